"""Workflows over the workflow SOAP service: the Figure 7 preset, the chain builder
and SiLK/JSON upload, each run over the images selected on the map (read through
the gateway with the user's rights and sent as the workflow's sources); the
workflow page with live state, the per-node table, logs, results, cancel/retry."""

from __future__ import annotations

import re
import uuid
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from gproc.errors import GprocError, InvalidRequest, NotFound
from gproc.services.portal import results
from gproc.services.portal.app import Ctx
from gproc.services.portal.forms import check_params, tool_form
from gproc.services.portal.workflows import CHAIN_INPUT, FIGURE7_SOURCE, Step, chain, figure7

WORKFLOW_ID = re.compile(r"^[0-9a-f]{32}$")
SOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}(\.[A-Za-z0-9_]{1,32})?$")
TERMINAL = {"completed", "failed", "cancelled", "purged"}
MAX_IMAGES = 50
MAX_DOCUMENT = 256 * 1024


def _wid(ctx: Ctx) -> str:
    wid = str(ctx.args["workflow_id"])
    if not WORKFLOW_ID.match(wid):
        raise NotFound("no such workflow")
    return wid


def datasets_of(raw: str) -> list[str]:
    """Dataset references (``group/name`` or ids) from a form field, in order."""
    refs = [r.strip() for r in re.split(r"[\n,]+", raw) if r.strip()]
    if len(refs) > MAX_IMAGES:
        raise InvalidRequest(f"datasets: at most {MAX_IMAGES} images", field="datasets")
    for r in refs:
        if len(r) > 300 or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$", r):
            raise InvalidRequest(f"datasets: {r[:40]!r} is not a dataset", field="datasets")
    return refs


def workflows_page(ctx: Ctx, status: int = 200, error: str | None = None) -> Response:
    page = ctx.api.call("workflow", "ListWorkflows", limit=100)
    flows = list(page.workflows or []) if page is not None else []
    tools = ctx.api.call("processing", "ListTools") or []
    picked = ctx.request.values.getlist("dataset") or datasets_of(ctx.form("datasets"))
    return ctx.render(
        "workflows.html", status, workflows=flows, tools=tools, picked=picked, error=error
    )


def _sources(ctx: Ctx, name: str, refs: list[str]) -> list[dict[str, Any]]:
    """Each dataset's raster, read from the gateway as the user, as an inline source."""
    if not refs:
        raise InvalidRequest("select at least one image on the map", field="datasets")
    limit = ctx.portal.config.max_upload_bytes
    out = []
    for ref in refs:
        d = ctx.api.call("catalogue", "GetDataset", ref)
        out.append({"name": name, "content": ctx.api.gateway_read(d.url, limit)})
    return out


def _register(ctx: Ctx, spec: dict[str, Any], refs: list[str]) -> Response:
    spec = {**spec, "submit": True, "client_request_id": f"portal-{uuid.uuid4().hex}"}
    wf = ctx.api.call("workflow", "RegisterWorkflow", spec)
    assert ctx.session is not None
    ctx.portal.submissions.record(wf.workflow_id, "workflow", ctx.session.dn, refs)
    return redirect(f"/workflows/{wf.workflow_id}", code=303)


def _guarded(ctx: Ctx, build: Any) -> Response:
    """Run a submission; any refusal is shown on the page and nothing is submitted."""
    try:
        return build()  # type: ignore[no-any-return]
    except GprocError as err:
        if getattr(err, "service_code", "") in ("Client.NotAuthenticated",):
            raise
        return workflows_page(ctx, 400, str(err))


def submit_figure7(ctx: Ctx) -> Response:
    def build() -> Response:
        refs = datasets_of(ctx.form("datasets"))
        sources = _sources(ctx, FIGURE7_SOURCE, refs)
        spec = {"document": figure7(len(refs)), "form": "silk", "name": "figure7"}
        return _register(ctx, {**spec, "sources": sources}, refs)

    return _guarded(ctx, build)


def parse_params(raw: str) -> dict[str, str]:
    """``name=value, name=value`` of a chain step."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in re.split(r"[\n,;]+", raw)):
        if not part:
            continue
        if "=" not in part:
            raise InvalidRequest(f"parameters: {part[:40]!r} is not name=value", field="steps")
        key, value = (s.strip() for s in part.split("=", 1))
        out[key] = value
    return out


def submit_chain(ctx: Ctx) -> Response:
    def build() -> Response:
        refs = datasets_of(ctx.form("datasets"))
        tools = [t for t in ctx.request.form.getlist("step_tool") if t.strip()]
        params = ctx.request.form.getlist("step_params")
        steps = []
        for i, tool in enumerate(tools):
            form = tool_form(ctx.api.call("processing", "DescribeTool", tool))
            raster_ports = [p for p in form.inputs if not p.multiple]
            if len(form.inputs) != 1 or not raster_ports:
                raise InvalidRequest(
                    f"step {i + 1}: {tool} takes {len(form.inputs)} inputs; a chain step "
                    "takes one image",
                    field="steps",
                )
            checked = check_params(form, parse_params(params[i] if i < len(params) else ""))
            if not checked.ok:
                problems = "; ".join(checked.errors.values())
                raise InvalidRequest(f"step {i + 1} ({tool}): {problems}", field="steps")
            steps.append(Step(tool, raster_ports[0].name, checked.values))
        document = chain(steps, len(refs))
        sources = _sources(ctx, CHAIN_INPUT, refs)
        spec = {"document": document, "form": "json", "name": "chain", "sources": sources}
        return _register(ctx, spec, refs)

    return _guarded(ctx, build)


def submit_upload(ctx: Ctx) -> Response:
    def build() -> Response:
        upload = ctx.request.files.get("document")
        if upload is None or not upload.filename:
            raise InvalidRequest("document: choose a SiLK (or JSON) file", field="document")
        data = upload.stream.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise InvalidRequest(f"document: larger than {MAX_DOCUMENT} bytes", field="document")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("document: not UTF-8 text", field="document") from None
        source = ctx.form("source", FIGURE7_SOURCE).strip() or FIGURE7_SOURCE
        if not SOURCE.match(source):
            raise InvalidRequest("source: a start task name such as A0", field="source")
        refs = datasets_of(ctx.form("datasets"))
        sources = _sources(ctx, source, refs) if refs else []
        form = "json" if text.lstrip().startswith("{") else "silk"
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", upload.filename.rsplit(".", 1)[0])[:32]
        spec = {"document": text, "form": form, "name": name or "upload", "sources": sources}
        return _register(ctx, spec, refs)

    return _guarded(ctx, build)


def workflow_page(ctx: Ctx) -> Response:
    wf = ctx.api.call("workflow", "GetWorkflowStatus", _wid(ctx))
    return ctx.render("workflow.html", wf=wf)


def workflow_api(ctx: Ctx) -> Response:
    wid = _wid(ctx)
    wf = ctx.api.call("workflow", "GetWorkflowStatus", wid)
    log = ctx.api.call("workflow", "GetWorkflowLog", wid)
    out: dict[str, Any] = {
        "id": wid,
        "name": wf.name,
        "state": wf.state,
        "reason": wf.state_reason,
        "terminal": wf.state in TERMINAL,
        "nodes": [
            {
                "name": n.name,
                "tool": n.tool,
                "branch": n.branch,
                "state": n.state,
                "job_id": n.job_id,
                "exit_code": n.exit_code,
                "runs": n.runs,
                "detail": n.detail or n.hold_reason,
            }
            for n in (wf.nodes or [])
        ],
        "events": [
            {"time": e.time, "kind": e.kind, "state": e.state, "detail": e.detail}
            for e in (log.events or [])
        ],
        "logs": [{"name": f.name, "text": (f.text or "")[-20000:]} for f in (log.logs or [])],
        "outputs": [],
        "layers": [],
    }
    if wf.state == "completed":
        outputs = ctx.api.call("workflow", "RetrieveWorkflowOutput", wid) or []
        out["outputs"] = [
            {"name": o.name, "size": o.size, "href": f"/workflows/{wid}/outputs/{o.name}"}
            for o in outputs
        ]
        out["layers"] = results.layers(ctx, wid, outputs, tasks_group=False)
    return ctx.json(out)


def workflow_output(ctx: Ctx) -> Response:
    wid, name = _wid(ctx), str(ctx.args["name"])
    for o in ctx.api.call("workflow", "RetrieveWorkflowOutput", wid) or []:
        if o.name == name:
            return results.download(ctx, name, o.location, o.content)
    raise NotFound("no such output")


def cancel_workflow(ctx: Ctx) -> Response:
    wid = _wid(ctx)
    ctx.api.call("workflow", "CancelWorkflow", wid)
    return redirect(f"/workflows/{wid}", code=303)


def retry_workflow(ctx: Ctx) -> Response:
    wid = _wid(ctx)
    ctx.api.call("workflow", "RetryWorkflow", wid)
    return redirect(f"/workflows/{wid}", code=303)


ROUTES = [
    ("/workflows", ["GET"], workflows_page, True),
    ("/workflows/figure7", ["POST"], submit_figure7, True),
    ("/workflows/chain", ["POST"], submit_chain, True),
    ("/workflows/upload", ["POST"], submit_upload, True),
    ("/workflows/<workflow_id>", ["GET"], workflow_page, True),
    ("/api/workflows/<workflow_id>", ["GET"], workflow_api, True),
    ("/workflows/<workflow_id>/outputs/<name>", ["GET"], workflow_output, True),
    ("/workflows/<workflow_id>/cancel", ["POST"], cancel_workflow, True),
    ("/workflows/<workflow_id>/retry", ["POST"], retry_workflow, True),
]

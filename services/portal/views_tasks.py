"""Operations and tasks over the processing SOAP service: forms generated from
DescribeTool, RegisterTask + SubmitTask, the task page with live state (polled
JSON), its log, its outputs (downloaded through the gateway, quicklook from the
catalogue), cancel and retry (ResubmitTask)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlencode

from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from gproc.errors import InvalidRequest, NotFound
from gproc.services.portal import results
from gproc.services.portal.app import Ctx
from gproc.services.portal.clients import ServiceRefused
from gproc.services.portal.forms import ToolForm, check_params, tool_form

TASK_ID = re.compile(r"^[0-9a-f]{32}$")
TOOL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TERMINAL = {"completed", "failed", "cancelled", "purged"}


def _task_id(ctx: Ctx) -> str:
    tid = str(ctx.args["task_id"])
    if not TASK_ID.match(tid):
        raise NotFound("no such task")
    return tid


def tools_page(ctx: Ctx) -> Response:
    tools = ctx.api.call("processing", "ListTools") or []
    query = urlencode([("input", v) for v in ctx.request.args.getlist("input")])
    return ctx.render("tools.html", tools=tools, query=query)


def _form(ctx: Ctx, name: str) -> ToolForm:
    if not TOOL.match(name):
        raise NotFound("no such tool")
    return tool_form(ctx.api.call("processing", "DescribeTool", name))


def tool_page(ctx: Ctx) -> Response:
    form = _form(ctx, ctx.args["tool"])
    picked = ctx.request.args.getlist("input")
    inputs = {p.name: (picked[i] if i < len(picked) else "") for i, p in enumerate(form.inputs)}
    return ctx.render("tool.html", form=form, values={}, inputs=inputs, errors={})


def input_reference(raw: str) -> str:
    """A task input as the processing service takes it: ``dataset:<group>/<name>`` or
    ``dataset:<id>``, or a gateway path (``/private/...`` -> ``gateway:///private/...``)."""
    ref = raw.strip()
    if ref.startswith("dataset:") and 8 < len(ref) <= 300:
        return ref
    if ref.startswith("gateway:///"):
        ref = ref[len("gateway://") :]
    if ref.startswith("/") and ".." not in ref.split("/") and len(ref) <= 4096:
        return "gateway://" + ref
    raise InvalidRequest("pick a dataset on the map or a path in your gateway area")


def submit_tool(ctx: Ctx) -> Response:
    form = _form(ctx, ctx.args["tool"])
    given = {p.name: ctx.form(p.name) for p in form.params}
    checked = check_params(form, given)
    inputs: dict[str, list[str]] = {}
    raw_inputs = {p.name: ctx.form(f"input.{p.name}") for p in form.inputs}
    for port in form.inputs:
        refs = [r for r in re.split(r"[\n,]+", raw_inputs[port.name]) if r.strip()]
        if not refs:
            checked.errors[f"input.{port.name}"] = f"{port.name}: pick an input"
            continue
        try:
            inputs[port.name] = [input_reference(r) for r in refs]
        except InvalidRequest as err:
            checked.errors[f"input.{port.name}"] = f"{port.name}: {err.message}"
    if not checked.ok:
        return ctx.render(
            "tool.html", 400, form=form, values=given, inputs=raw_inputs, errors=checked.errors
        )
    spec = {
        "client_request_id": f"portal-{uuid.uuid4().hex}",
        "tool": form.name,
        "params": [{"name": k, "value": v} for k, v in checked.values.items()],
        "inputs": [
            {"name": port, "location": ref} for port, refs in inputs.items() for ref in refs
        ],
    }
    try:
        registered = ctx.api.call("processing", "RegisterTask", [spec])
    except ServiceRefused as err:
        errors = {"_": str(err)}
        return ctx.render(
            "tool.html", 400, form=form, values=given, inputs=raw_inputs, errors=errors
        )
    task_id = registered[0].task_id
    assert ctx.session is not None
    refs = [r[len("dataset:") :] for rs in inputs.values() for r in rs if r.startswith("dataset:")]
    ctx.portal.submissions.record(task_id, "task", ctx.session.dn, refs)
    ctx.api.call("processing", "SubmitTask", [task_id])
    return redirect(f"/tasks/{task_id}", code=303)


def tasks_page(ctx: Ctx) -> Response:
    page = ctx.api.call("processing", "ListTasks", limit=100)
    tasks = list(page.tasks or []) if page is not None else []
    return ctx.render("tasks.html", tasks=tasks)


def task_page(ctx: Ctx) -> Response:
    tid = _task_id(ctx)
    status = ctx.api.call("processing", "GetTaskStatus", [tid])[0]
    return ctx.render("task.html", task=status)


def task_api(ctx: Ctx) -> Response:
    tid = _task_id(ctx)
    status = ctx.api.call("processing", "GetTaskStatus", [tid])[0]
    log = ctx.api.call("processing", "GetTaskLog", tid, 65536)
    out: dict[str, Any] = {
        "id": tid,
        "tool": status.tool,
        "state": status.state,
        "reason": status.state_reason,
        "hold_reason": status.hold_reason,
        "exit_code": status.exit_code,
        "attempt": status.attempt,
        "terminal": status.state in TERMINAL,
        "events": [
            {"time": e.time, "kind": e.kind, "state": e.state, "detail": e.detail}
            for e in (log.events or [])
        ],
        "stdout": log.stdout or "",
        "stderr": log.stderr or "",
        "outputs": [],
        "layers": [],
    }
    if status.state == "completed":
        outputs = ctx.api.call("processing", "RetrieveTaskOutput", tid).outputs or []
        out["outputs"] = [
            {
                "name": o.name,
                "port": o.port,
                "size": o.size,
                "href": f"/tasks/{tid}/outputs/{o.name}",
            }
            for o in outputs
        ]
        out["layers"] = results.task_layers(ctx, tid, outputs)
    return ctx.json(out)


def task_output(ctx: Ctx) -> Response:
    tid, name = _task_id(ctx), str(ctx.args["name"])
    outputs = ctx.api.call("processing", "RetrieveTaskOutput", tid).outputs or []
    for o in outputs:
        if o.name == name:
            return results.download(ctx, name, o.location, o.content)
    raise NotFound("no such output")


def cancel_task(ctx: Ctx) -> Response:
    tid = _task_id(ctx)
    ctx.api.call("processing", "CancelTask", [tid], "cancelled in the portal")
    return redirect(f"/tasks/{tid}", code=303)


def retry_task(ctx: Ctx) -> Response:
    tid = _task_id(ctx)
    ctx.api.call("processing", "ResubmitTask", [tid])
    return redirect(f"/tasks/{tid}", code=303)


ROUTES = [
    ("/tools", ["GET"], tools_page, True),
    ("/tools/<tool>", ["GET"], tool_page, True),
    ("/tools/<tool>", ["POST"], submit_tool, True),
    ("/tasks", ["GET"], tasks_page, True),
    ("/tasks/<task_id>", ["GET"], task_page, True),
    ("/api/tasks/<task_id>", ["GET"], task_api, True),
    ("/tasks/<task_id>/outputs/<name>", ["GET"], task_output, True),
    ("/tasks/<task_id>/cancel", ["POST"], cancel_task, True),
    ("/tasks/<task_id>/retry", ["POST"], retry_task, True),
]

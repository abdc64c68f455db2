"""Wire <-> domain conversions. No policy and no I/O beyond reading small outputs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gproc.connectors import Connector, ToolRequest, gisheo
from gproc.connectors.base import InvalidRequest
from gproc.domain import InvalidTaskRequest, OutputFile, Owner, TaskRequest, TaskView
from gproc.services.soap import types as w

INLINE_PREFIX = "inline:"


# ---- tools ------------------------------------------------------------------
def tool_summary(c: Connector) -> w.ToolSummary:
    return w.ToolSummary(
        name=c.name, description=c.description, gisheo_prototype=gisheo.prototype(c)
    )


def tool_info(c: Connector) -> w.ToolInfo:
    d = c.describe()
    return w.ToolInfo(
        name=c.name,
        description=c.description,
        gisheo_prototype=gisheo.prototype(c),
        inputs=[w.InputPortInfo(**p) for p in d["inputs"]],
        outputs=[w.OutputPortInfo(**p) for p in d["outputs"]],
        params=[_param_info(p) for p in d["params"]],
        cpus=d["resources"]["cpus"],
        memory_mb=d["resources"]["memory_mb"],
        disk_mb=d["resources"]["disk_mb"],
    )


def _param_info(p: dict[str, Any]) -> w.ParamInfo:
    default = p.get("default")
    if isinstance(default, list | tuple):
        default = ",".join(str(v) for v in default)
    return w.ParamInfo(
        name=p["name"],
        type=p["type"],
        description=p["description"],
        required=p["required"],
        default=None
        if default is None
        else str(default).lower()
        if isinstance(default, bool)
        else str(default),
        minimum=p.get("min"),
        maximum=p.get("max"),
        choices=[str(c) for c in p.get("choices") or []],
    )


# ---- registration -------------------------------------------------------------
def task_request(spec: Any, owner: Owner) -> TaskRequest:
    """The domain request for one wire ``TaskSpec`` (structured or GiSHEO notation)."""
    sources, inline = _inputs(spec.inputs or [])
    if spec.processing:
        if spec.tool or spec.params or spec.outputs:
            raise InvalidTaskRequest(
                "processing", "give either processing + argument_list or tool + params, not both"
            )
        single = {}
        for name, refs in sources.items():
            if len(refs) != 1:
                raise InvalidTaskRequest(f"inputs.{name}", "GiSHEO inputs take one source each")
            single[name] = refs[0]
        try:
            tool_request = gisheo.parse(spec.processing, spec.argument_list or "", single)
        except InvalidRequest as exc:
            raise InvalidTaskRequest(exc.field, exc.message) from exc
    else:
        if not spec.tool:
            raise InvalidTaskRequest("tool", "a tool (or GiSHEO processing) is required")
        tool_request = ToolRequest(
            tool=spec.tool,
            inputs={k: v[0] if len(v) == 1 else tuple(v) for k, v in sources.items()},
            params=_pairs("params", ((p.name, p.value) for p in spec.params or [])),
            outputs=_pairs("outputs", ((o.port, o.label) for o in spec.outputs or [])),
        )
    return TaskRequest(
        tool_request=tool_request,
        owner=owner,
        client_request_id=spec.client_request_id or None,
        inline_inputs=_inline_by_port(tool_request, inline),
        # optional: OGC's Execute, converted here too, has no task callback
        callback_url=getattr(spec, "callback_url", None) or None,
        callback_secret=getattr(spec, "callback_secret", None) or None,
    )


def _inputs(items: Sequence[Any]) -> tuple[dict[str, list[str]], dict[str, bytes]]:
    """Wire ``InputData`` items: name -> sources (inline content becomes a placeholder
    source), name -> bytes."""
    sources: dict[str, list[str]] = {}
    inline: dict[str, bytes] = {}
    for item in items:
        where = f"inputs.{item.name}"
        has_content = item.content is not None
        if has_content == bool(item.location):
            raise InvalidTaskRequest(where, "give exactly one of content or location")
        if has_content:
            if item.name in sources:
                raise InvalidTaskRequest(where, "inline content is for single-file inputs")
            inline[item.name] = b"".join(item.content)
            sources[item.name] = [INLINE_PREFIX + item.name]
            continue
        if item.name in inline:
            raise InvalidTaskRequest(where, "inline content is for single-file inputs")
        if not item.location.startswith(("file://", "gateway://", "https://", "dataset:")):
            raise InvalidTaskRequest(
                where,
                "locations must be data-gateway paths "
                "(gateway:///area/path or the gateway's https URL), "
                "catalogue datasets (dataset:<datagroup>/<dataset> or dataset:<id>) or "
                "file:// URLs under a directory the service allows "
                "(or send the content inline)",
            )
        sources.setdefault(item.name, []).append(item.location)
    return sources, inline


def _inline_by_port(request: ToolRequest, inline: dict[str, bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for port, src in request.inputs.items():
        if isinstance(src, str) and src.startswith(INLINE_PREFIX):
            out[port] = inline[src[len(INLINE_PREFIX) :]]
    return out


def _pairs(field: str, items: Iterable[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in items:
        if key in out:
            raise InvalidTaskRequest(f"{field}.{key}", "given twice")
        out[key] = value
    return out


# ---- tasks ----------------------------------------------------------------------
def registered(view: TaskView, accounting_group: str | None) -> w.RegisteredTask:
    return w.RegisteredTask(
        task_id=view.id,
        client_request_id=view.client_request_id,
        tool=view.tool,
        state=str(view.state),
        accounting_group=accounting_group,
        job_description=view.job_description,
    )


def task_status(v: TaskView) -> w.TaskStatus:
    return w.TaskStatus(
        task_id=v.id,
        tool=v.tool,
        state=str(v.state),
        state_reason=v.state_reason,
        wms_job_id=v.job_id,
        attempt=v.attempt,
        hold_reason=v.hold_reason,
        hold_code=v.hold_code,
        exit_code=v.exit_code,
        owner_dn=v.owner_dn,
        owner_vo=v.owner_vo,
        client_request_id=v.client_request_id,
        created=v.created_at,
        updated=v.updated_at,
        submitted=v.submitted_at,
        started=v.started_at,
        finished=v.finished_at,
    )


def task_log(data: dict[str, Any]) -> w.TaskLog:
    return w.TaskLog(
        task_id=data["task_id"],
        state=data["state"],
        stdout=data["stdout"],
        stderr=data["stderr"],
        events=[
            w.TaskEvent(
                time=datetime.fromisoformat(e["time"]),
                kind=e["kind"],
                state=e["state"],
                detail=e["detail"],
            )
            for e in data["events"]
        ],
    )


def task_output(
    task_id: str,
    out: OutputFile,
    cap: int,
    url_base: str | None,
    gateway_location: Callable[[str], str] | None = None,
) -> w.TaskOutput:
    """Checksums always; the bytes when small; the gateway location of an output stored
    in the owner's area (else, for large ones, where ``url_base`` serves them)."""
    small = out.size <= cap
    location = None
    if out.stored_at and gateway_location is not None:
        location = gateway_location(out.stored_at)
    elif not small and url_base:
        location = f"{url_base.rstrip('/')}/{quote(task_id)}/{quote(out.name)}"
    return w.TaskOutput(
        port=out.port,
        name=out.name,
        size=out.size,
        adler32=out.adler32,
        sha256=out.sha256,
        inline=small,
        content=[Path(out.path).read_bytes()] if small else None,
        location=location,
    )

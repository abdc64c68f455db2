"""``gproc tools``, ``gproc task ...`` and ``gproc tracker``: the core from a shell.

The CLI acts as the local user (owner ``/O=local/CN=<user>`` unless
``--owner-dn`` is given) and may name local files as inputs.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gproc import connectors
from gproc.app import build_service, build_task_deliverer, build_tracker
from gproc.connectors.base import ToolRequest, UnknownTool
from gproc.domain import GprocError, Owner, TaskRequest, TaskResult, TaskView
from gproc.leader import LEADER_META, current_leader
from gproc.lifecycle import TaskService
from gproc.registry import Registry, TaskFilter
from gproc.settings import get_settings
from gproc.states import TERMINAL, TaskState
from gproc.wrappers.base import WmsError

# wide enough for full task and job ids when output goes to a file or a pipe
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@contextmanager
def _service() -> Iterator[TaskService]:
    try:
        svc = build_service(get_settings())
    except Exception as exc:  # configuration or database problems: say so plainly
        err.print(f"[red]error:[/red] cannot start the core: {exc}")
        sys.exit(2)
    try:
        yield svc
    except GprocError as exc:  # every reportable error derives from the root
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    finally:
        svc.registry.close()


def _emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render()


def _task_table(views: Sequence[TaskView]) -> Table:
    t = Table("task id", "tool", "state", "job id", "exit", "reason", "updated")
    t.columns[0].no_wrap = t.columns[3].no_wrap = True
    for v in views:
        reason = v.hold_reason or v.state_reason or ""
        t.add_row(
            v.id,
            v.tool,
            str(v.state),
            v.job_id or "",
            _s(v.exit_code),
            reason,
            v.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return t


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _results(
    results: Sequence[TaskResult], as_json: bool, extra: dict[str, Any] | None = None
) -> None:
    views = [r.task for r in results if r.task]
    errors = [(r.task_id, str(r.error)) for r in results if r.error]
    data = {"tasks": [v.as_dict() for v in views], "errors": dict(errors), **(extra or {})}

    def render() -> None:
        if views:
            out.print(_task_table(views))
        for tid, msg in errors:
            err.print(f"[red]{tid}:[/red] {msg}")

    _emit(data, as_json, render)
    if errors:
        sys.exit(1)


# ---- tools --------------------------------------------------------------
@click.command("tools")
@click.argument("name", required=False)
@json_opt
def tools_cmd(name: str | None, as_json: bool) -> None:
    """List processing tools, or describe one."""
    try:
        items = [connectors.get_connector(name)] if name else connectors.list_connectors()
    except UnknownTool as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    descs = [c.describe() for c in items]

    def render() -> None:
        if not name:
            t = Table("tool", "inputs", "outputs", "description")
            for d in descs:
                t.add_row(d["name"], _ports(d["inputs"]), _ports(d["outputs"]), d["description"])
            out.print(t)
            return
        d = descs[0]
        out.print(f"[bold]{d['name']}[/bold]: {d['description']}")
        out.print(f"inputs: {_ports(d['inputs'])}   outputs: {_ports(d['outputs'])}")
        t = Table("parameter", "type", "default", "range / choices", "description")
        for p in d["params"]:
            rng = p.get("choices") or f"{_s(p.get('min'))} .. {_s(p.get('max'))}"
            t.add_row(
                p["name"], p["type"], _s(p.get("default")), str(rng), p.get("description", "")
            )
        out.print(t)

    _emit(descs if name is None else descs[0], as_json, render)


def _ports(ports: Sequence[dict[str, Any]]) -> str:
    return ", ".join(p["name"] for p in ports)


# ---- tasks --------------------------------------------------------------
@click.group("task")
def task_group() -> None:
    """Register, submit and follow processing tasks."""


def _kv(values: Sequence[str], what: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} must be NAME=VALUE, got {item!r}")
        if key in pairs:  # repeated input ports form a list (e.g. mosaic inputs)
            prev = pairs[key]
            pairs[key] = (*prev, value) if isinstance(prev, tuple) else (prev, value)
        else:
            pairs[key] = value
    return pairs


@task_group.command("register")
@click.argument("tool", required=False)
@click.option("-i", "--input", "inputs", multiple=True, help="PORT=PATH (repeat).")
@click.option("-p", "--param", "params", multiple=True, help="NAME=VALUE (repeat).")
@click.option("--processing", help="GiSHEO prototype, e.g. 'outIMG_1 canny(inIMG_1#canny1)'.")
@click.option("--argument-list", default="", help="GiSHEO arguments, e.g. '<canny1=50>'.")
@click.option("--request-id", help="Client request id: registering it again is a no-op.")
@click.option("--owner-dn", help="Owner DN (default: the local user).")
@click.option("--submit", "and_submit", is_flag=True, help="Submit right after registering.")
@click.option("--callback", help="http(s) URL every state change is POSTed to.")
@click.option(
    "--callback-secret-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="File holding the HMAC-SHA256 key the callback events are signed with.",
)
@json_opt
def register_cmd(
    tool: str | None,
    inputs: tuple[str, ...],
    params: tuple[str, ...],
    processing: str | None,
    argument_list: str,
    request_id: str | None,
    owner_dn: str | None,
    and_submit: bool,
    callback: str | None,
    callback_secret_file: Path | None,
    as_json: bool,
) -> None:
    """Register a task (TOOL with --input/--param, or --processing GiSHEO notation)."""
    if callback_secret_file and not callback:
        raise click.UsageError("--callback-secret-file goes with --callback")
    secret = callback_secret_file.read_text().strip() if callback_secret_file else None
    with _service() as svc:
        req = _tool_request(
            tool, _kv(inputs, "--input"), _kv(params, "--param"), processing, argument_list
        )
        owner = Owner(dn=owner_dn or f"/O=local/CN={getpass.getuser()}")
        task = TaskRequest(
            req, owner, client_request_id=request_id, callback_url=callback, callback_secret=secret
        )
        views = svc.register([task])
        if and_submit:
            _results(svc.submit([v.id for v in views]), as_json)
            return
        _emit(
            {"tasks": [v.as_dict() for v in views]}, as_json, lambda: out.print(_task_table(views))
        )


def _tool_request(
    tool: str | None,
    inputs: dict[str, Any],
    params: dict[str, Any],
    processing: str | None,
    argument_list: str,
) -> ToolRequest:
    if processing:
        from gproc.connectors import gisheo

        if tool or params:
            raise click.UsageError("--processing replaces TOOL and --param")
        return gisheo.parse(processing, argument_list, inputs)
    if not tool:
        raise click.UsageError("give a TOOL or --processing")
    return ToolRequest(tool=tool, inputs=inputs, params=params)


def _ids_command(name: str, doc: str) -> Callable[..., Any]:
    def deco(fn: Callable[[TaskService, list[str], bool], None]) -> Any:
        @task_group.command(name, help=doc)
        @click.argument("task_ids", nargs=-1, required=True)
        @json_opt
        def cmd(task_ids: tuple[str, ...], as_json: bool) -> None:
            with _service() as svc:
                fn(svc, list(task_ids), as_json)

        return cmd

    return deco


@_ids_command("submit", "Submit registered tasks (one batch).")
def _submit(svc: TaskService, ids: list[str], as_json: bool) -> None:
    _results(svc.submit(ids), as_json)


@task_group.command("status")
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--wms", "ask_wms", is_flag=True, help="Also show what the WMS says of each job now.")
@json_opt
def status_cmd(task_ids: tuple[str, ...], ask_wms: bool, as_json: bool) -> None:
    """Show tasks' states as the registry has them (a read: nothing is changed; the
    tracker, `gproc tracker run` or `gproc serve`, keeps them fresh)."""
    with _service() as svc:
        results = svc.status(list(task_ids))
        wms = _wms_view(svc, results) if ask_wms else None
        if wms is not None and not as_json:
            t = Table("task id", "WMS state", "hold reason", "inputs uploading")
            for row in wms:
                t.add_row(row["task_id"], row["state"], row["hold_reason"], row["spooling"])
            out.print(t)
        _results(results, as_json, {"wms": wms} if wms is not None else None)


def _wms_view(svc: TaskService, results: Sequence[TaskResult]) -> list[dict[str, Any]]:
    """The WMS's own view of the tasks' jobs, read-only (one query)."""
    jobs = {r.task.job_id: r.task.id for r in results if r.task and r.task.job_id}
    try:
        infos = svc.wms.query(list(jobs)) if jobs else {}
    except WmsError as exc:
        err.print(f"[yellow]WMS unreachable:[/yellow] {exc}")
        return []
    return [
        {
            "task_id": jobs[j],
            "state": str(i.state),
            "hold_reason": i.hold_reason or "",
            "spooling": "yes" if i.spooling else "",
        }
        for j, i in infos.items()
        if j in jobs
    ]


def _one_by_one(action: Callable[[TaskService, str], TaskView]) -> Callable[..., None]:
    def run(svc: TaskService, ids: list[str], as_json: bool) -> None:
        _results([TaskResult(t, task=action(svc, t)) for t in ids], as_json)

    return run


for _name, _doc, _action in [
    ("cancel", "Cancel tasks.", lambda s, t: s.cancel(t)),
    ("hold", "Hold tasks' jobs.", lambda s, t: s.hold(t)),
    ("release", "Release held tasks.", lambda s, t: s.release(t)),
    ("resubmit", "Run failed or cancelled tasks again.", lambda s, t: s.resubmit(t)),
    ("purge", "Forget finished tasks' jobs and data.", lambda s, t: s.purge(t)),
]:
    _ids_command(_name, _doc)(_one_by_one(_action))


@task_group.command("log")
@click.argument("task_id")
@json_opt
def log_cmd(task_id: str, as_json: bool) -> None:
    """A task's events and the tail of its job's stdout/stderr."""
    with _service() as svc:
        data = svc.log(task_id)

        def render() -> None:
            t = Table("time", "event", "state", "detail")
            for e in data["events"]:
                t.add_row(e["time"], e["kind"], _s(e["state"]), e["detail"])
            out.print(t)
            for stream in ("stdout", "stderr"):
                if data[stream]:
                    out.rule(stream)
                    out.print(data[stream], markup=False, highlight=False)

        _emit(data, as_json, render)


@task_group.command("retrieve")
@click.argument("task_id")
@json_opt
def retrieve_cmd(task_id: str, as_json: bool) -> None:
    """Where a finished task's outputs are, with size and checksums."""
    with _service() as svc:
        outputs = svc.outputs(task_id)

        def render() -> None:
            t = Table("output", "file", "size", "adler32", "sha256", "path")
            for o in outputs:
                t.add_row(o.port, o.name, str(o.size), o.adler32, o.sha256[:16] + "…", o.path)
            out.print(t)

        _emit([o.__dict__ for o in outputs], as_json, render)


@task_group.command("wait")
@click.argument("task_ids", nargs=-1, required=True)
@click.option("--timeout", default=600.0, show_default=True, help="Seconds.")
@click.option("--track/--no-track", default=True, show_default=True, help="Run tracker cycles.")
@json_opt
def wait_cmd(task_ids: tuple[str, ...], timeout: float, track: bool, as_json: bool) -> None:
    """Follow tasks until they have ended. Unlike `status` this drives tracker cycles
    here (the CLI's way of running tasks without a service); with --no-track it only
    polls the registry while `gproc tracker run` or `gproc serve` tracks."""
    with _service() as svc:
        tracker = build_tracker(svc, get_settings()) if track else None
        deadline = time.monotonic() + timeout
        while True:
            if tracker is not None:
                tracker.cycle(reconcile=True)
            results = svc.status(list(task_ids))
            if all(r.task and r.task.state in TERMINAL | {TaskState.PURGED} for r in results):
                break
            if time.monotonic() > deadline:
                err.print(f"[red]timeout:[/red] tasks still running after {timeout:.0f} s")
                _results(results, as_json)
                sys.exit(3)
            time.sleep(1.0)
        _results(results, as_json)


@task_group.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in TaskState]))
@click.option("--tool")
@click.option("--owner-dn")
@click.option("--page-token", help="Continue after the page that printed this token.")
@click.option("--offset", default=0, show_default=True, help="Skip rows (slow when deep).")
@click.option("--limit", default=50, show_default=True)
@click.option("--total", "with_total", is_flag=True, help="Also count all matching tasks.")
@json_opt
def list_cmd(
    states: tuple[str, ...],
    tool: str | None,
    owner_dn: str | None,
    page_token: str | None,
    offset: int,
    limit: int,
    with_total: bool,
    as_json: bool,
) -> None:
    """List tasks, newest first, one page at a time."""
    with _service() as svc:
        flt = TaskFilter(owner_dn=owner_dn, states=tuple(TaskState(s) for s in states), tool=tool)
        views, token, total = svc.list_page(
            flt, limit=limit, after=page_token, offset=offset, with_total=with_total
        )

        def render() -> None:
            out.print(_task_table(views))
            counted = f" of {total}" if total is not None else ""
            out.print(f"{len(views)}{counted} task(s)")
            if token:
                out.print(f"next page: --page-token {token}")

        data: dict[str, Any] = {"tasks": [v.as_dict() for v in views], "next_page_token": token}
        if total is not None:
            data["total"] = total
        _emit(data, as_json, render)


# ---- tracker ------------------------------------------------------------
@click.group("tracker")
def tracker_group() -> None:
    """The background task tracker."""


@tracker_group.command("run")
def tracker_run() -> None:
    """Track all active tasks until interrupted."""
    with _service() as svc:
        tracker = build_tracker(svc, get_settings())
        deliverer = build_task_deliverer(svc, get_settings(), tracker)
        tracker.start()
        deliverer.start()
        out.print(f"tracker running every {tracker.interval_s} s; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            tracker.stop()
            deliverer.stop()


@tracker_group.command("leader")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tracker_leader(as_json: bool) -> None:
    """Which replica's tracker leads (PostgreSQL: the holder of the tracker lock)."""
    reg = Registry(get_settings().database_url)
    try:
        holder = current_leader(reg.engine)
        last = reg.get_meta(LEADER_META)
        dialect = reg.engine.dialect.name
    finally:
        reg.close()
    data = {"leader": holder, "last_recorded": json.loads(last) if last else None}

    def render() -> None:
        if dialect != "postgresql":
            out.print("SQLite: one node; the tracker runs in the process that starts it")
        elif holder is None:
            out.print("no replica leads the tracker now")
        else:
            out.print(f"{holder['replica']} leads (lock session since {holder['since']})")

    _emit(data, as_json, render)

"""``gproc workflow ...``: SiLK and structured workflows, run by HTCondor DAGMan.

The CLI acts as the local user (owner ``/O=local/CN=<user>`` unless ``--owner-dn``
is given) and may name local files as workflow inputs.
"""

from __future__ import annotations

import getpass
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from gproc.domain import Owner
from gproc.errors import GprocError
from gproc.settings import get_settings
from gproc.workflows.app import build_notifier, build_workflow_service, build_workflow_tracker
from gproc.workflows.service import WorkflowRequest, WorkflowService
from gproc.workflows.states import TERMINAL, WorkflowState
from gproc.workflows.views import WorkflowView

out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
owner_opt = click.option("--owner-dn", help="Owner DN (default: the local user).")


@contextmanager
def _service() -> Iterator[WorkflowService]:
    try:
        svc = build_workflow_service(get_settings())
    except Exception as exc:  # configuration, database or pool problems: say so plainly
        err.print(f"[red]error:[/red] cannot start the workflow core: {exc}")
        sys.exit(2)
    try:
        yield svc
    except GprocError as exc:
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    finally:
        svc.store.engine.dispose()


def _owner(owner_dn: str | None) -> Owner:
    return Owner(dn=owner_dn or f"/O=local/CN={getpass.getuser()}")


def _emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render()


def _summary(v: WorkflowView) -> None:
    out.print(
        f"[bold]{v.id}[/bold] {v.name} ({v.form}): [bold]{v.state}[/bold]"
        + (f" — {v.state_reason}" if v.state_reason else "")
        + (f"  DAGMan job {v.job_id}" if v.job_id else "")
    )
    t = Table("node", "tool", "state", "job id", "exit", "runs", "hold reason / detail")
    t.columns[0].no_wrap = t.columns[3].no_wrap = True
    for n in v.nodes:
        t.add_row(
            n.name + (" *" if n.final else ""),
            n.tool,
            str(n.state),
            n.job_id or "",
            "" if n.exit_code is None else str(n.exit_code),
            str(n.runs),
            n.hold_reason or n.detail or "",
        )
    out.print(t)
    if v.callback_secret:
        out.print(f"callback secret (shown once): {v.callback_secret}")


def _show(v: WorkflowView, as_json: bool) -> None:
    _emit(v.as_dict(), as_json, lambda: _summary(v))


def _sources(items: tuple[str, ...]) -> dict[str, list[str]]:
    sources: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise click.BadParameter(
                f"{item!r}: expected NODE[.PORT]=SOURCE", param_hint="--source"
            )
        sources.setdefault(key, []).append(value)
    return sources


@click.group("workflow")
def workflow_group() -> None:
    """Register, submit and follow workflows (SiLK or structured JSON) run by DAGMan."""


@workflow_group.command("register")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-s",
    "--source",
    "sources",
    multiple=True,
    help="Data of a start task or input: NODE[.PORT]=FILE; repeat to fan out.",
)
@click.option("--name", help="Workflow name (default: the document's).")
@click.option("--form", type=click.Choice(["silk", "json"]), help="Default: by file suffix.")
@click.option("--callback", help="URL receiving signed JSON events on every change.")
@click.option("--callback-secret", help="HMAC secret (default: one is made and shown).")
@click.option("--keep-intermediate", is_flag=True, help="Keep every node's outputs.")
@click.option("--request-id", help="Client request id (idempotent registration).")
@click.option("--submit", "submit_now", is_flag=True, help="Submit at once.")
@owner_opt
@json_opt
def register_cmd(
    document: Path,
    sources: tuple[str, ...],
    name: str | None,
    form: str | None,
    callback: str | None,
    callback_secret: str | None,
    keep_intermediate: bool,
    request_id: str | None,
    submit_now: bool,
    owner_dn: str | None,
    as_json: bool,
) -> None:
    """Validate and register a workflow document (FILE.silk or FILE.json)."""
    form = form or ("json" if document.suffix.lower() == ".json" else "silk")
    name = name or ("".join(c if c.isalnum() else "_" for c in document.stem)[:32] or "workflow")
    if not name[0].isalpha():
        name = "w" + name[:31]
    with _service() as svc:
        view = svc.register(
            WorkflowRequest(
                text=document.read_text(),
                owner=_owner(owner_dn),
                form=form,
                name=name,
                sources=_sources(sources),
                client_request_id=request_id,
                callback_url=callback,
                callback_secret=callback_secret,
                keep_intermediate=keep_intermediate or None,
            )
        )
        if submit_now:
            secret = view.callback_secret
            view = svc.submit(view.id, _owner(owner_dn))
            if secret:
                out.print(f"callback secret (shown once): {secret}")
        _show(view, as_json)


def _one(
    name: str, action: Callable[[WorkflowService, str, Owner], WorkflowView], doc: str
) -> None:
    @workflow_group.command(name, help=doc)
    @click.argument("workflow_id")
    @owner_opt
    @json_opt
    def command(workflow_id: str, owner_dn: str | None, as_json: bool) -> None:
        with _service() as svc:
            _show(action(svc, workflow_id, _owner(owner_dn)), as_json)


_one("submit", lambda s, w, o: s.submit(w, o), "Submit a registered workflow (one DAGMan job).")
_one("status", lambda s, w, o: s.get(w, o), "A workflow's state and its per-node table.")
_one("cancel", lambda s, w, o: s.cancel(w, o), "Cancel a workflow: every node job is removed.")
_one(
    "retry",
    lambda s, w, o: s.retry(w, o),
    "Run a failed workflow again: DAGMan's rescue DAG reruns only what did not complete.",
)
_one("purge", lambda s, w, o: s.purge(w, o), "Forget a finished workflow's jobs and files.")


@workflow_group.command("log")
@click.argument("workflow_id")
@owner_opt
@json_opt
def log_cmd(workflow_id: str, owner_dn: str | None, as_json: bool) -> None:
    """History, DAGMan's log and each node's output (once the DAG has ended)."""
    with _service() as svc:
        data = svc.log(workflow_id, _owner(owner_dn))

    def render() -> None:
        for e in data["events"]:
            out.print(f"{e['time']}  {e['kind']:<10} {e['state'] or '':<10} {e['detail']}")
        for name, text in data["logs"].items():
            out.rule(name)
            out.print(text, markup=False, highlight=False)

    _emit(data, as_json, render)


@workflow_group.command("retrieve")
@click.argument("workflow_id")
@click.option(
    "--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True
)
@click.option("--intermediate", is_flag=True, help="Also intermediate outputs, if kept.")
@owner_opt
@json_opt
def retrieve_cmd(
    workflow_id: str, dest: Path, intermediate: bool, owner_dn: str | None, as_json: bool
) -> None:
    """Copy a finished workflow's outputs (final nodes, else the leaves) to DEST."""
    with _service() as svc:
        outputs = svc.outputs(workflow_id, _owner(owner_dn), intermediate=intermediate)
    dest.mkdir(parents=True, exist_ok=True)
    for o in outputs:
        shutil.copyfile(o.path, dest / o.name)
    data = [dict(o.__dict__, copied_to=str(dest / o.name)) for o in outputs]

    def render() -> None:
        t = Table("node", "port", "file", "size", "adler32", "sha256", "stored at")
        for o in outputs:
            t.add_row(
                o.node,
                o.port,
                str(dest / o.name),
                str(o.size),
                o.adler32,
                o.sha256[:16] + "…",
                o.stored_at or "",
            )
        out.print(t)

    _emit(data, as_json, render)


@workflow_group.command("list")
@click.option(
    "--state", "states", multiple=True, type=click.Choice([s.value for s in WorkflowState])
)
@click.option("--offset", default=0, show_default=True)
@click.option("--limit", default=50, show_default=True)
@owner_opt
@json_opt
def list_cmd(
    states: tuple[str, ...], offset: int, limit: int, owner_dn: str | None, as_json: bool
) -> None:
    """The caller's workflows, newest first."""
    with _service() as svc:
        views, total = svc.list_workflows(
            _owner(owner_dn), [WorkflowState(s) for s in states], offset, limit
        )

    def render() -> None:
        t = Table("workflow id", "name", "form", "state", "attempt", "updated")
        for v in views:
            t.add_row(
                v.id,
                v.name,
                v.form,
                str(v.state),
                str(v.attempt),
                v.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
        out.print(t)
        out.print(f"{len(views)} of {total}")

    _emit({"workflows": [v.as_dict() for v in views], "total": total}, as_json, render)


@workflow_group.command("wait")
@click.argument("workflow_id")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds.")
@owner_opt
@json_opt
def wait_cmd(workflow_id: str, timeout: float, owner_dn: str | None, as_json: bool) -> None:
    """Follow a workflow (running workflow tracker cycles here) until it has ended."""
    with _service() as svc:
        tracker = build_workflow_tracker(svc, get_settings())
        deadline = time.monotonic() + timeout
        while True:
            tracker.cycle()
            view = svc.get(workflow_id, _owner(owner_dn))
            if view.state in TERMINAL | {WorkflowState.PURGED}:
                break
            if time.monotonic() > deadline:
                err.print(f"[red]timeout:[/red] workflow still {view.state} after {timeout:.0f} s")
                _show(view, as_json)
                sys.exit(3)
            time.sleep(1.0)
        _show(view, as_json)
        if view.state != WorkflowState.COMPLETED:
            sys.exit(1)


SERVE_OVERRIDES = {
    "host": "workflow.host",
    "port": "workflow.port",
    "cert": "service.cert",
    "key": "service.key",
    "ca_dir": "service.ca_dir",
    "vomsdir": "service.vomsdir",
    "policy": "service.policy",
}


@workflow_group.command("serve")
@click.option("--host")
@click.option("--port", type=int)
@click.option("--cert", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path))
@click.option("--ca-dir", type=click.Path(path_type=Path))
@click.option("--vomsdir", type=click.Path(path_type=Path))
@click.option("--policy", type=click.Path(path_type=Path))
def serve_cmd(**options: Any) -> None:
    """Serve the workflow SOAP service (WSDL at https://HOST:PORT/?wsdl), with the
    workflow tracker and the callback notifier in the same process."""
    from gproc.security.tls import TLSConfig
    from gproc.services.chassis import serve
    from gproc.services.workflow.app import (
        ACCESS_LOGGER,
        LOGGERS,
        build_context,
        make_workflow_server,
    )

    settings = serve.apply_overrides(get_settings(), options, SERVE_OVERRIDES)
    serve.require(settings, "service.cert", "service.key", "service.ca_dir")
    svc = settings.service
    serve.json_logging(LOGGERS, access=[ACCESS_LOGGER])
    validator = serve.build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator=validator)
    tls = TLSConfig(svc.cert, svc.key, svc.ca_dir)  # type: ignore[arg-type]
    server = make_workflow_server(
        gp, validator, tls, host=settings.workflow.host, port=settings.workflow.port
    )
    tracker = build_workflow_tracker(gp.core, settings)
    notifier = build_notifier(gp.core, settings, tracker)
    serve.run(
        [server, tracker, notifier],
        banner=lambda: f"gproc workflow: serving {server.url}/ (WSDL: {server.url}/?wsdl)",
        name="gproc workflow",
        cleanup=[gp.core.store.engine.dispose],
    )


@workflow_group.command("track")
def track_cmd() -> None:
    """Track every active workflow and deliver callbacks until interrupted."""
    with _service() as svc:
        settings = get_settings()
        tracker = build_workflow_tracker(svc, settings)
        notifier = build_notifier(svc, settings, tracker)
        tracker.start()
        notifier.start()
        out.print(f"workflow tracker running every {tracker.interval_s} s; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            tracker.stop()
            notifier.stop()

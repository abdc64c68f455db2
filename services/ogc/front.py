"""What every OGC front (OGC API - Processes, WPS 2.0, WPS 1.0.0) does with a job.

A job *is* a gproc task: a front parses its wire format into the SOAP service's task
spec shape (``jobs.Execute``) and :class:`JobFront` does the rest the same way for
all of them: the caller's identity and VO standing, the policy per process and per
operation, register + submit, waiting for a synchronous execute, another user's job
being :class:`NoSuchJob`, dismissal (cancel + purge), and the per-job output options
(:class:`JobOptions`, kept beside the registry so an asynchronous job's
``transmissionMode`` / ``asReference`` survive until its results are read, across
restarts).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gproc import connectors, errors
from gproc.connectors import Connector
from gproc.domain import NotReady, OutputFile, TaskView
from gproc.security.identity import Identity
from gproc.security.wsgi_auth import ENV_AUTH_ERROR, ENV_IDENTITY
from gproc.services.ogc import jobs
from gproc.services.ogc.tables import JobStatus, job_status
from gproc.services.soap.convert import task_request
from gproc.services.soap.service import ServiceContext, owner_of
from gproc.settings import OgcSettings
from gproc.states import ACTIVE, TaskState
from gproc.vo import membership_refusal

if TYPE_CHECKING:
    from gproc.services.ogc.workflows import WorkflowProcesses
    from gproc.workflows.views import WorkflowView

_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class NoSuchProcess(errors.NotFound):
    code = "Client.NoSuchProcess"


class NoSuchJob(errors.NotFound):
    """No job of that id that the caller may see (another user's job is one too)."""

    code = "Client.NoSuchJob"


class JobFailed(errors.Conflict):
    """Results were asked of a job that failed: the error carries its reason."""

    code = "Client.JobFailed"


class JobOptions:
    """Per-job output options of the OGC fronts, one small JSON file per job.

    Written once at execute, before the job id is given out; read when results are
    asked for; dropped at dismissal. A missing file means the defaults."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, jid: str) -> Path:
        if not _JOB_ID.match(jid):
            raise NoSuchJob(f"no job {jid[:80]!r}", task_id=jid[:80])
        return self.root / f"{jid}.json"

    def put(self, jid: str, options: dict[str, Any]) -> None:
        if not options:
            return
        path = self._path(jid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(options))
        os.replace(tmp, path)

    def get(self, jid: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._path(jid).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    def drop(self, jid: str) -> None:
        self._path(jid).unlink(missing_ok=True)


def connector(pid: str) -> Connector:
    try:
        return connectors.get_connector(pid)
    except connectors.UnknownTool:
        raise NoSuchProcess(f"no process {pid[:80]!r}", field="processID") from None


class JobFront:
    """The job operations shared by the OGC fronts (see the module docstring)."""

    def __init__(
        self,
        gp: ServiceContext,
        ogc: OgcSettings,
        options: JobOptions,
        workflows: WorkflowProcesses | None = None,
    ) -> None:
        self.gp = gp
        self.ogc = ogc
        self.options = options
        self.workflows = workflows  # the registered workflows' processes, if any

    def caller(self, environ: dict[str, Any]) -> Identity:
        ident: Identity | None = environ.get(ENV_IDENTITY)
        if ident is None:
            raise errors.NotAuthenticated(
                environ.get(ENV_AUTH_ERROR) or "no valid client credential"
            )
        store = self.gp.vo_store
        if store is not None and ident.acs:
            refusal = membership_refusal(
                store, (ac.vo for ac in ident.acs), ident.subject_grid, ident.issuer_grid
            )
            if refusal is not None:
                raise errors.NotAuthorised(refusal, rule="vo-membership")
        return ident

    def workflow_processes(self) -> WorkflowProcesses:
        """The registered workflows' processes; NoSuchProcess when there are none."""
        if self.workflows is None:
            raise NoSuchProcess("no registered workflows here", field="processID")
        return self.workflows

    def workflow_job(
        self, ident: Identity, operation: str, jid: str, err: NoSuchJob
    ) -> WorkflowView:
        """The caller's workflow job ``jid`` (once it is no task of theirs), else ``err``."""
        view = self.workflows.job_of(ident, operation, jid) if self.workflows else None
        if view is None:
            raise err
        return view

    def start(self, ident: Identity, spec: jobs.Execute, options: dict[str, Any]) -> TaskView:
        """Register and submit the task of an execute request the caller may run."""
        gp = self.gp
        gp.policy.require(ident, "register", spec.tool)
        gp.policy.require(ident, "submit", spec.tool)
        req = task_request(spec, owner_of(ident, gp.policy))
        for port, data in req.inline_inputs.items():
            if len(data) > gp.inline_input_cap:
                raise errors.LimitExceeded(
                    f"inline input {port!r} exceeds {gp.inline_input_cap} bytes",
                    field=f"inputs.{port}",
                )
        (view,) = gp.core.register([req])
        self.options.put(view.id, options)
        (submitted,) = gp.core.submit([view.id])
        return submitted.task or view

    def wait(self, view: TaskView, within_s: float | None = None) -> TaskView:
        """The job once it has finished, or as it is after ``within_s`` seconds."""
        deadline = time.monotonic() + (self.ogc.sync_wait_s if within_s is None else within_s)
        while job_status(view.state) not in (
            JobStatus.SUCCESSFUL,
            JobStatus.FAILED,
            JobStatus.DISMISSED,
        ):
            if time.monotonic() >= deadline:
                break
            time.sleep(min(self.ogc.poll_s, max(deadline - time.monotonic(), 0.01)))
            view = self.gp.core.get(view.id)
        return view

    def job_of(self, ident: Identity, operation: str, jid: str) -> TaskView:
        """The job, once the caller may do ``operation`` on it; others' jobs do not exist."""
        if not _JOB_ID.match(jid):
            raise NoSuchJob(f"no job {jid[:80]!r}", task_id=jid[:80])
        (result,) = self.gp.core.status([jid])
        view = result.task
        if view is None or not self.gp.policy.may_act_on(ident, view.owner_dn, view.owner_vo):
            raise NoSuchJob(f"no job {jid}", task_id=jid)
        self.gp.policy.require(ident, operation, view.tool)
        return view

    def finished(self, ident: Identity, jid: str) -> TaskView:
        """The job if it succeeded; else why its results cannot be had."""
        view = self.job_of(ident, "retrieve", jid)
        status = job_status(view.state)
        if status == JobStatus.DISMISSED:
            raise NoSuchJob(f"job {jid} was dismissed", task_id=jid)
        if status == JobStatus.FAILED:
            raise JobFailed(view.state_reason or "the job failed", task_id=jid)
        if status != JobStatus.SUCCESSFUL:
            raise NotReady(f"job {jid} is {status}; results exist once it has succeeded")
        return view

    def dismiss(self, ident: Identity, jid: str, front: str) -> TaskView:
        """Cancel the job if it is unfinished, then purge it."""
        view = self.job_of(ident, "cancel", jid)
        self.gp.policy.require(ident, "purge", view.tool)
        core = self.gp.core
        if view.state in ACTIVE:
            view = core.cancel(jid, f"dismissed through {front}")
        if view.state != TaskState.PURGED:
            view = core.purge(jid)
        self.options.drop(jid)
        return view

    def outputs(self, view: TaskView) -> list[OutputFile]:
        return self.gp.core.outputs(view.id)

    def output(self, ident: Identity, jid: str, out: str) -> tuple[bytes, str]:
        """One output's bytes and media type."""
        view = self.finished(ident, jid)
        found = [o for o in self.gp.core.outputs(jid) if o.port == out]
        if not found:
            raise errors.NotFound(f"job {jid} has no output {out!r}", field="output")
        media = jobs.media_types(connector(view.tool)).get(out, "application/octet-stream")
        return Path(found[0].path).read_bytes(), media


def options_root(gp: ServiceContext) -> Path:
    return Path(gp.settings.state_dir) / "ogc-jobs"

"""OGC API - Processes - Part 1: Core on the chassis (JSON over HTTPS, X.509 proxies).

Request path: cheroot TLS (client chain) -> IdentityMiddleware -> AccessLog
(``gproc.ogc.access``) -> :class:`ProcessesApp` -> the core. The app shares the
SOAP service's :class:`ServiceContext` (core, policy, VO store), so a job here is
a task there. Authorisation per operation is the SOAP service's (``register`` and
``submit`` to execute, ``status``, ``retrieve``, ``list``, ``cancel`` + ``purge``
to dismiss); another user's job is 404, as if it did not exist. Every error is
``application/problem+json`` with the status from :mod:`.tables`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.util import application_uri

from gproc import connectors, errors
from gproc.domain import InvalidTaskRequest, TaskView
from gproc.registry import TaskFilter
from gproc.security.chain import Validator
from gproc.security.identity import Identity
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.security.wsgi_auth import ENV_IDENTITY
from gproc.services.chassis import AccessLog, as_error
from gproc.services.chassis.guard import ENV_FAULT, ENV_OPERATION, ENV_REQUEST_ID, WSGIApp
from gproc.services.chassis.metrics import RegistryFigures, metrics_endpoint
from gproc.services.chassis.wsgi import ac_problem
from gproc.services.ogc import describe, jobs, openapi
from gproc.services.ogc import workflows as wf
from gproc.services.ogc.front import (
    JobFront,
    JobOptions,
    NoSuchJob,
    connector,
    options_root,
)
from gproc.services.ogc.tables import JOB_STATUS, JobStatus, http_status, job_status, problem_type
from gproc.services.ogc.wps import WpsApp
from gproc.services.soap.service import ServiceContext, owner_of
from gproc.settings import OgcSettings
from gproc.states import TaskState

ACCESS_LOGGER = "gproc.ogc.access"
LOGGERS = ("gproc.ogc", "gproc.services", "gproc.tracker")
JSON = "application/json"
log = logging.getLogger("gproc.ogc")

CONFORMANCE = [
    f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{c}"
    for c in ("core", "json", "oas30", "job-list", "dismiss")
]
_ID = r"(?P<NAME>[A-Za-z0-9_.-]{1,64})"


def _path(template: str) -> str:
    """A route template's regular expression: ``{name}`` becomes a named id group."""
    return re.sub(r"\{(\w+)\}", lambda m: _ID.replace("NAME", m.group(1)), template)


ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile("^" + _path(p) + "$"), op)
    for m, p, op in (
        ("GET", "/", "landing"),
        ("GET", "/conformance", "conformance"),
        ("GET", "/api", "api"),
        ("GET", "/processes", "processes"),
        ("GET", "/processes/{pid}", "process"),
        ("POST", "/processes/{pid}/execution", "execute"),
        ("GET", "/jobs", "jobs"),
        ("GET", "/jobs/{jid}", "job"),
        ("DELETE", "/jobs/{jid}", "dismiss"),
        ("GET", "/jobs/{jid}/results", "results"),
        ("GET", "/jobs/{jid}/results/{out}", "result"),
    )
]
WPS_PATH = "/wps"
PUBLIC = frozenset({"landing", "conformance", "api"})


class MethodNotAllowed(errors.InvalidRequest):
    code = "Client.MethodNotAllowed"


@dataclass
class Reply:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON


class ProcessesApp(JobFront):
    """The WSGI application: one handler per route, errors as problem+json."""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            reply = self._dispatch(environ)
        except Exception as exc:  # noqa: BLE001 - every error becomes a problem document
            reply = self._problem(environ, exc)
        if isinstance(reply.body, bytes):
            body = reply.body
        else:
            body = json.dumps(reply.body, indent=None).encode()
        headers = [
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(body))),
            *reply.headers,
        ]
        start_response(f"{reply.status} {_REASONS.get(reply.status, 'Status')}", headers)
        return [body]

    # ---- routing ---------------------------------------------------------------
    def _dispatch(self, environ: dict[str, Any]) -> Reply:
        path = (environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        allowed: list[str] = []
        for verb, pattern, op in ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if verb != method and not (method == "HEAD" and verb == "GET"):
                allowed.append(verb)
                continue
            environ[ENV_OPERATION] = op
            ident = None if op in PUBLIC else self.caller(environ)
            handler = getattr(self, f"_{op}")
            return handler(environ, ident, **match.groupdict())  # type: ignore[no-any-return]
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here (allowed: {', '.join(allowed)})")
        raise errors.NotFound(f"no resource at {path}", field="path")

    # ---- service documents -------------------------------------------------------
    def _landing(self, environ: dict[str, Any], _: None) -> Reply:
        base = _base(environ)
        links = [
            ("self", JSON, "/", "this document"),
            ("service-desc", openapi.MEDIA, "/api", "the API definition"),
            (
                "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                JSON,
                "/conformance",
                "conformance",
            ),
            ("http://www.opengis.net/def/rel/ogc/1.0/processes", JSON, "/processes", "processes"),
            ("http://www.opengis.net/def/rel/ogc/1.0/job-list", JSON, "/jobs", "jobs"),
            (
                "service",
                "application/xml",
                WPS_PATH + "?service=WPS&request=GetCapabilities",
                "WPS 2.0 and 1.0.0 on the same jobs",
            ),
        ]
        return Reply(
            200,
            {
                "title": "gproc processing",
                "description": "Earth-observation processing on the grid (OGC API - Processes)",
                "links": [
                    {"href": base + ("" if h == "/" else h), "rel": r, "type": t, "title": n}
                    for r, t, h, n in links
                ],
            },
        )

    def _conformance(self, environ: dict[str, Any], _: None) -> Reply:
        return Reply(200, {"conformsTo": CONFORMANCE})

    def _api(self, environ: dict[str, Any], _: None) -> Reply:
        return Reply(200, openapi.document(_base(environ)), content_type=openapi.MEDIA)

    # ---- processes ---------------------------------------------------------------
    def _processes(self, environ: dict[str, Any], ident: Identity) -> Reply:
        base = _base(environ)
        procs = [describe.summary(c, base) for c in connectors.list_connectors()]
        if self.workflows is not None:
            procs += self.workflows.summaries(base)
        return Reply(200, {"processes": procs, "links": [_self(base + "/processes")]})

    def _process(self, environ: dict[str, Any], ident: Identity, pid: str) -> Reply:
        if pid.startswith(wf.PREFIX):
            return Reply(200, self.workflow_processes().describe(pid, _base(environ)))
        return Reply(200, describe.process(connector(pid), _base(environ)))

    def _wf_execute(self, environ: dict[str, Any], ident: Identity, pid: str, base: str) -> Reply:
        """A registered workflow's job: always asynchronous (a DAG takes minutes)."""
        procs = self.workflow_processes()
        procs.get(pid)
        body = _json_body(environ, self.ogc.max_body_bytes)
        view = procs.start(ident, owner_of(ident, procs.wf.policy), pid, body)
        headers: tuple[tuple[str, str], ...] = (("Location", f"{base}/jobs/{view.id}"),)
        if "respond-async" in environ.get("HTTP_PREFER", ""):
            headers = (*headers, ("Preference-Applied", "respond-async"))
        return Reply(201, wf.status_info(view, base), headers)

    def _execute(self, environ: dict[str, Any], ident: Identity, pid: str) -> Reply:
        base = _base(environ)
        if pid.startswith(wf.PREFIX):
            return self._wf_execute(environ, ident, pid, base)
        spec = jobs.parse_execute(connector(pid), _json_body(environ, self.ogc.max_body_bytes))
        view = self.start(ident, spec, {"modes": spec.modes} if spec.modes else {})
        location = (("Location", f"{base}/jobs/{view.id}"),)
        if "respond-async" in environ.get("HTTP_PREFER", ""):
            headers = (*location, ("Preference-Applied", "respond-async"))
            return Reply(201, jobs.status_info(view, base), headers)
        view = self.wait(view)
        if job_status(view.state) != JobStatus.SUCCESSFUL:  # not done in time, or failed
            return Reply(201, jobs.status_info(view, base), location)
        return Reply(200, self._results_doc(view, base), location)

    # ---- jobs ------------------------------------------------------------------------
    def _jobs(self, environ: dict[str, Any], ident: Identity) -> Reply:
        q = _query(environ)
        tool = q.get("processID")
        if tool is not None and tool.startswith(wf.PREFIX):
            return self._wf_jobs(environ, ident, q, tool)
        if tool is not None:
            connector(tool)
        self.gp.policy.require(ident, "list", tool)
        states = _states(q.get("status"))
        limit = _int(q, "limit", 100, 1, 1000)
        offset = _int(q, "offset", 0, 0, 1 << 30)
        admin = bool(ident.vo) and self.gp.policy.is_vo_admin(ident, ident.vo or "")
        flt = TaskFilter(
            owner_dn=None if admin else ident.subject_grid,
            owner_vo=ident.vo if admin else None,
            states=states,
            tool=tool,
        )
        views, total = self.gp.core.list_tasks(flt, offset, limit)
        base = _base(environ)
        docs = [jobs.status_info(v, base) for v in views]
        if tool is None and self.workflows is not None:  # workflow jobs follow the tasks
            wviews, wtotal = self.workflows.list(
                owner_of(ident, self.gp.policy),
                _statuses(q.get("status")),
                max(offset - total, 0),
                limit - len(views),
            )
            docs += [wf.status_info(v, base) for v in wviews]
            total += wtotal
        return Reply(200, {"jobs": docs, "numberMatched": total, "links": [_self(base + "/jobs")]})

    def _wf_jobs(
        self, environ: dict[str, Any], ident: Identity, q: dict[str, str], pid: str
    ) -> Reply:
        """The caller's jobs of one registered workflow's process."""
        procs = self.workflow_processes()
        reg = procs.get(pid)
        self.gp.policy.require(ident, "list")
        views, _ = procs.list(
            owner_of(ident, self.gp.policy),
            _statuses(q.get("status")),
            0,
            1000,
        )
        mine = [v for v in views if v.name == reg.name]
        offset, limit = _int(q, "offset", 0, 0, 1 << 30), _int(q, "limit", 100, 1, 1000)
        base = _base(environ)
        return Reply(
            200,
            {
                "jobs": [wf.status_info(v, base) for v in mine[offset : offset + limit]],
                "numberMatched": len(mine),
                "links": [_self(base + "/jobs")],
            },
        )

    def _job(self, environ: dict[str, Any], ident: Identity, jid: str) -> Reply:
        try:
            view = self.job_of(ident, "status", jid)
        except NoSuchJob as err:
            return Reply(
                200, wf.status_info(self.workflow_job(ident, "status", jid, err), _base(environ))
            )
        return Reply(200, jobs.status_info(view, _base(environ)))

    def _dismiss(self, environ: dict[str, Any], ident: Identity, jid: str) -> Reply:
        try:
            view = self.dismiss(ident, jid, "OGC API - Processes")
        except NoSuchJob as err:
            wview = self.workflow_job(ident, "cancel", jid, err)
            wview = self.workflow_processes().dismiss(ident, wview)
            return Reply(200, wf.status_info(wview, _base(environ)))
        return Reply(200, jobs.status_info(view, _base(environ)))

    def _results(self, environ: dict[str, Any], ident: Identity, jid: str) -> Reply:
        try:
            self.job_of(ident, "retrieve", jid)
        except NoSuchJob as err:
            wview = self.workflow_job(ident, "retrieve", jid, err)  # err when no workflows here
            return Reply(200, self.workflow_processes().results(wview))
        view = self.finished(ident, jid)
        return Reply(200, self._results_doc(view, _base(environ)))

    def _result(self, environ: dict[str, Any], ident: Identity, jid: str, out: str) -> Reply:
        data, media = self.output(ident, jid, out)
        return Reply(200, data, content_type=media)

    def _results_doc(self, view: TaskView, base: str) -> dict[str, Any]:
        """Outputs as asked at execute (``transmissionMode``), kept for async jobs too."""
        media = jobs.media_types(connector(view.tool))
        modes = self.options.get(view.id).get("modes") or {}
        outs = self.outputs(view)
        return jobs.results(view.id, outs, media, self.ogc.max_inline_output_bytes, base, modes)

    # ---- problems ----------------------------------------------------------------
    def _problem(self, environ: dict[str, Any], exc: BaseException) -> Reply:
        seen = as_error(exc)
        if seen is None:
            log.error("internal error", exc_info=exc)
            err: errors.GprocError = errors.Internal(
                "internal error; the service log has the details"
            )
        else:
            err = seen[0]
        status = 405 if isinstance(err, MethodNotAllowed) else http_status(err)
        doc: dict[str, Any] = {
            "type": problem_type(err),
            "title": err.code,
            "status": status,
            "detail": str(err),
            **{k: v for k, v in err.details().items() if k != "message"},
            "request_id": environ.get(ENV_REQUEST_ID, ""),
        }
        problem = ac_problem(environ.get(ENV_IDENTITY))
        if problem and status in (401, 403):
            doc["ac_problem"] = problem
        environ[ENV_FAULT] = err.code
        headers: tuple[tuple[str, str], ...] = ()
        if status == 401:
            headers = (("WWW-Authenticate", 'X509 realm="gproc"'),)
        return Reply(status, doc, headers, content_type="application/problem+json")


_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _base(environ: dict[str, Any]) -> str:
    return application_uri(environ).rstrip("/")


def _self(href: str) -> dict[str, str]:
    return {"href": href, "rel": "self", "type": JSON}


def _query(environ: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(environ.get("QUERY_STRING", ""), max_num_fields=32))


def _int(q: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise InvalidTaskRequest(name, f"an integer from {lo} to {hi}")
    return int(raw)


def _states(raw: str | None) -> tuple[TaskState, ...]:
    if not raw:
        return ()
    wanted: list[TaskState] = []
    for name in raw.split(","):
        if name not in set(JobStatus):
            raise InvalidTaskRequest("status", f"one or more of {', '.join(JobStatus)}")
        wanted.extend(s for s, j in JOB_STATUS.items() if j == name)
    return tuple(wanted)


def _statuses(raw: str | None) -> tuple[JobStatus, ...]:
    _states(raw)  # the same validation as for tasks
    return tuple(JobStatus(n) for n in raw.split(",")) if raw else ()


def _json_body(environ: dict[str, Any], cap: int) -> Any:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw.isdigit():
        raise errors.InvalidRequest("a JSON body with a Content-Length is required", field="body")
    length = int(raw)
    if length > cap:
        _drain(environ["wsgi.input"], min(length, 16 * cap))  # so the client reads the answer
        raise errors.LimitExceeded(f"the body exceeds {cap} bytes", field="body")
    ctype = environ.get("CONTENT_TYPE", "").split(";")[0].strip()
    if ctype != JSON:
        raise errors.InvalidRequest(f"the body must be {JSON}, not {ctype!r}", field="body")
    data = environ["wsgi.input"].read(length)
    if len(data) != length:
        raise errors.InvalidRequest("the body ended early", field="body")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise errors.InvalidRequest(f"the body is not JSON: {exc}"[:300], field="body") from None


def _drain(stream: Any, length: int, within_s: float = 5.0) -> None:
    """Read and drop up to ``length`` bytes, for at most ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while length > 0 and time.monotonic() < deadline:
        try:
            chunk = stream.read(min(length, 1 << 16))
        except OSError:
            return
        if not chunk:
            return
        length -= len(chunk)


def build_wsgi(
    gp: ServiceContext, ogc: OgcSettings, workflows: wf.WorkflowProcesses | None = None
) -> WSGIApp:
    """The WSGI stack below identity: access log (and metrics), then ``/wps`` (WPS 2.0
    and 1.0.0) or the processes app, all over one job model and one store of job
    options."""
    options = JobOptions(options_root(gp))
    processes = ProcessesApp(gp, ogc, options, workflows)
    wps = WpsApp(gp, ogc, options, workflows)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == WPS_PATH or path.startswith(WPS_PATH + "/"):
            return wps(environ, start_response)
        return processes(environ, start_response)

    figures = RegistryFigures(gp.core.registry.engine)
    return AccessLog(route, ACCESS_LOGGER, metrics=metrics_endpoint(gp.settings, figures))


def make_ogc_server(
    gp: ServiceContext,
    ogc: OgcSettings,
    validator: Validator,
    tls: TLSConfig | None,
    workflows: wf.WorkflowProcesses | None = None,
) -> GridServer:
    """The HTTPS server (not started). Identity is optional at the HTTP layer so a caller
    without a usable credential gets a 401 problem and the landing page is readable."""
    svc = gp.settings.service
    return make_server(
        build_wsgi(gp, ogc, workflows),
        ogc.host,
        ogc.port,
        tls,
        validator,
        trusted_proxies=svc.trusted_proxies,
        require_identity=False,
        threads=ogc.threads,
        timeout_s=svc.request_timeout_s,
        read_timeout_s=svc.read_timeout_s,
        prefetch_bytes=min(ogc.max_body_bytes, 1 << 20),
    )

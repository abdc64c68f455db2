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
from gproc.connectors import Connector
from gproc.domain import InvalidTaskRequest, NotReady, TaskView
from gproc.registry import TaskFilter
from gproc.security.chain import Validator
from gproc.security.identity import Identity
from gproc.security.tls import GridServer, TLSConfig, make_server
from gproc.security.wsgi_auth import ENV_AUTH_ERROR, ENV_IDENTITY
from gproc.services.chassis import AccessLog, as_error
from gproc.services.chassis.guard import ENV_FAULT, ENV_OPERATION, ENV_REQUEST_ID, WSGIApp
from gproc.services.chassis.metrics import RegistryFigures, metrics_endpoint
from gproc.services.chassis.wsgi import ac_problem
from gproc.services.ogc import describe, jobs, openapi
from gproc.services.ogc.tables import JOB_STATUS, JobStatus, http_status, job_status, problem_type
from gproc.services.soap.convert import task_request
from gproc.services.soap.service import ServiceContext, owner_of
from gproc.settings import OgcSettings
from gproc.states import ACTIVE, TaskState
from gproc.vo import membership_refusal

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
PUBLIC = frozenset({"landing", "conformance", "api"})


class MethodNotAllowed(errors.InvalidRequest):
    code = "Client.MethodNotAllowed"


class JobFailed(errors.Conflict):
    """Results were asked of a job that failed: the problem carries its reason."""

    code = "Client.JobFailed"


@dataclass
class Reply:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON


class ProcessesApp:
    """The WSGI application: one handler per route, errors as problem+json."""

    def __init__(self, gp: ServiceContext, ogc: OgcSettings) -> None:
        self.gp = gp
        self.ogc = ogc

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
            ident = None if op in PUBLIC else self._caller(environ)
            handler = getattr(self, f"_{op}")
            return handler(environ, ident, **match.groupdict())  # type: ignore[no-any-return]
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here (allowed: {', '.join(allowed)})")
        raise errors.NotFound(f"no resource at {path}", field="path")

    def _caller(self, environ: dict[str, Any]) -> Identity:
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
        return Reply(200, {"processes": procs, "links": [_self(base + "/processes")]})

    def _process(self, environ: dict[str, Any], ident: Identity, pid: str) -> Reply:
        return Reply(200, describe.process(_connector(pid), _base(environ)))

    def _execute(self, environ: dict[str, Any], ident: Identity, pid: str) -> Reply:
        gp, base = self.gp, _base(environ)
        connector = _connector(pid)
        gp.policy.require(ident, "register", pid)
        gp.policy.require(ident, "submit", pid)
        spec = jobs.parse_execute(connector, _json_body(environ, self.ogc.max_body_bytes))
        req = task_request(spec, owner_of(ident, gp.policy))
        for port, data in req.inline_inputs.items():
            if len(data) > gp.inline_input_cap:
                raise errors.LimitExceeded(
                    f"inline input {port!r} exceeds {gp.inline_input_cap} bytes",
                    field=f"inputs.{port}",
                )
        (view,) = gp.core.register([req])
        (submitted,) = gp.core.submit([view.id])
        view = submitted.task or view
        location = (("Location", f"{base}/jobs/{view.id}"),)
        if "respond-async" in environ.get("HTTP_PREFER", ""):
            headers = (*location, ("Preference-Applied", "respond-async"))
            return Reply(201, jobs.status_info(view, base), headers)
        view = self._wait(view, self.ogc.sync_wait_s)
        if job_status(view.state) != JobStatus.SUCCESSFUL:  # not done in time, or failed
            return Reply(201, jobs.status_info(view, base), location)
        return Reply(200, self._results_doc(view, base, spec.modes), location)

    def _wait(self, view: TaskView, within_s: float) -> TaskView:
        deadline = time.monotonic() + within_s
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

    # ---- jobs ------------------------------------------------------------------------
    def _job_of(self, ident: Identity, operation: str, jid: str) -> TaskView:
        """The job, once the caller may do ``operation`` on it; others' jobs are 404."""
        (result,) = self.gp.core.status([jid])
        view = result.task
        if view is None or not self.gp.policy.may_act_on(ident, view.owner_dn, view.owner_vo):
            raise errors.NotFound(f"no job {jid}", task_id=jid)
        self.gp.policy.require(ident, operation, view.tool)
        return view

    def _jobs(self, environ: dict[str, Any], ident: Identity) -> Reply:
        q = _query(environ)
        tool = q.get("processID")
        if tool is not None:
            _connector(tool)
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
        return Reply(
            200,
            {
                "jobs": [jobs.status_info(v, base) for v in views],
                "numberMatched": total,
                "links": [_self(base + "/jobs")],
            },
        )

    def _job(self, environ: dict[str, Any], ident: Identity, jid: str) -> Reply:
        return Reply(200, jobs.status_info(self._job_of(ident, "status", jid), _base(environ)))

    def _dismiss(self, environ: dict[str, Any], ident: Identity, jid: str) -> Reply:
        view = self._job_of(ident, "cancel", jid)
        self.gp.policy.require(ident, "purge", view.tool)
        core = self.gp.core
        if view.state in ACTIVE:
            view = core.cancel(jid, "dismissed through OGC API - Processes")
        if view.state != TaskState.PURGED:
            view = core.purge(jid)
        return Reply(200, jobs.status_info(view, _base(environ)))

    def _results(self, environ: dict[str, Any], ident: Identity, jid: str) -> Reply:
        view = self._finished(ident, jid)
        return Reply(200, self._results_doc(view, _base(environ)))

    def _result(self, environ: dict[str, Any], ident: Identity, jid: str, out: str) -> Reply:
        view = self._finished(ident, jid)
        found = [o for o in self.gp.core.outputs(jid) if o.port == out]
        if not found:
            raise errors.NotFound(f"job {jid} has no output {out!r}", field="output")
        media = jobs.media_types(_connector(view.tool)).get(out, "application/octet-stream")
        with open(found[0].path, "rb") as fh:
            data = fh.read()
        return Reply(200, data, content_type=media)

    def _finished(self, ident: Identity, jid: str) -> TaskView:
        view = self._job_of(ident, "retrieve", jid)
        status = job_status(view.state)
        if status == JobStatus.DISMISSED:
            raise errors.NotFound(f"job {jid} was dismissed", task_id=jid)
        if status == JobStatus.FAILED:
            raise JobFailed(view.state_reason or "the job failed", task_id=jid)
        if status != JobStatus.SUCCESSFUL:
            raise NotReady(f"job {jid} is {status}; results exist once it has succeeded")
        return view

    def _results_doc(
        self, view: TaskView, base: str, modes: dict[str, str] | None = None
    ) -> dict[str, Any]:
        media = jobs.media_types(_connector(view.tool))
        outs = self.gp.core.outputs(view.id)
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


def _connector(pid: str) -> Connector:
    try:
        return connectors.get_connector(pid)
    except connectors.UnknownTool:
        raise errors.NotFound(f"no process {pid!r}", field="processID") from None


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


def build_wsgi(gp: ServiceContext, ogc: OgcSettings) -> WSGIApp:
    """The WSGI stack below identity: access log, then the processes app."""
    figures = RegistryFigures(gp.core.registry.engine)
    return AccessLog(
        ProcessesApp(gp, ogc), ACCESS_LOGGER, metrics=metrics_endpoint(gp.settings, figures)
    )


def make_ogc_server(
    gp: ServiceContext, ogc: OgcSettings, validator: Validator, tls: TLSConfig | None
) -> GridServer:
    """The HTTPS server (not started). Identity is optional at the HTTP layer so a caller
    without a usable credential gets a 401 problem and the landing page is readable."""
    svc = gp.settings.service
    return make_server(
        build_wsgi(gp, ogc),
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

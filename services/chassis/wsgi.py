"""The WSGI side of every front: request id, JSON access log, and a SOAP service's
stack (access log -> XML guard -> spyne) whose every answer is a declared fault.

spyne answers some errors itself, before any operation runs (a value failing its
declared type, a missing element): :class:`SoapWsgi` turns those into the service's
own declared faults with a detail, as it does for the operations' errors, adds the
request id, records the code for the access log and, when the caller is refused
and one of their attribute certificates was ignored, says why it was.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from spyne import Application, Fault, ServiceBase
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from gproc.security.identity import Identity
from gproc.security.wsgi_auth import ENV_AUTH_ERROR, ENV_IDENTITY
from gproc.services.chassis.errors import ErrorTable
from gproc.services.chassis.faults import ServiceFault
from gproc.services.chassis.guard import (
    ENV_FAULT,
    ENV_OPERATION,
    ENV_REQUEST_ID,
    WSGIApp,
    XmlGuard,
)
from gproc.services.chassis.metrics import METRICS_PATH, MetricsEndpoint, observe

_REFUSALS = ("Client.NotAuthorised", "Client.NotAuthenticated")

# spyne logs every fault with a traceback; the access log records them once instead
for _name in ("spyne.application.client", "spyne.application.server", "spyne.application"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class AccessLog:
    """A request id per call (``X-Request-Id`` header, fault detail), one JSON line
    per call on ``logger`` (caller, operation, HTTP status, fault code, duration) and
    the same figures as Prometheus metrics (``service`` label: ``service``, default
    the logger's second part, e.g. ``gproc.soap.access`` -> ``soap``). With
    ``metrics``, ``GET /metrics`` is answered by it (operation ``metrics``);
    ``routes`` (path prefix -> app, e.g. ``/ops/``) go to other apps than ``app``,
    which set the operation themselves."""

    def __init__(
        self,
        app: WSGIApp,
        logger: str,
        *,
        service: str | None = None,
        metrics: MetricsEndpoint | None = None,
        routes: Mapping[str, WSGIApp] | None = None,
    ) -> None:
        self.app = app
        self.log = logging.getLogger(logger)
        self.service = service or (logger.split(".") + [""])[1] or logger
        self.metrics = metrics
        self.routes = tuple((routes or {}).items())

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        rid = uuid.uuid4().hex[:16]
        environ[ENV_REQUEST_ID] = rid
        started = time.perf_counter()
        status: list[str] = []

        def _start(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, [*headers, ("X-Request-Id", rid)], exc_info)

        body = self._route(environ)(environ, _start)
        return _Logged(body, lambda: self._line(environ, rid, status, started))

    def _route(self, environ: dict[str, Any]) -> WSGIApp:
        path = environ.get("PATH_INFO") or "/"
        if self.metrics is not None and path == METRICS_PATH:
            environ[ENV_OPERATION] = "metrics"
            return self.metrics
        for prefix, app in self.routes:
            if path.startswith(prefix):
                return app
        return self.app

    def _line(self, environ: dict[str, Any], rid: str, status: list[str], started: float) -> None:
        ident = environ.get(ENV_IDENTITY)
        seconds = time.perf_counter() - started
        code = int(status[0].split()[0]) if status else None
        operation, fault = environ.get(ENV_OPERATION), environ.get(ENV_FAULT)
        observe(self.service, operation, code, fault, seconds)
        self.log.info(
            json.dumps(
                {
                    "request_id": rid,
                    "method": environ.get("REQUEST_METHOD"),
                    "operation": operation,
                    "path": environ.get("PATH_INFO"),
                    "dn": ident.subject_grid if ident else None,
                    "remote": environ.get("REMOTE_ADDR"),
                    "status": code,
                    "fault": fault,
                    "ms": round(seconds * 1000, 2),
                }
            )
        )


class _Logged:
    """Iterates a WSGI body and logs once it is done (or closed)."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done = done
        self._logged = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.body

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
        if not self._logged:
            self._logged = True
            self.done()


def ac_problem(ident: Identity | None) -> str | None:
    """Why the caller's attribute certificates were ignored, if any were."""
    if ident is None or not ident.rejected_acs:
        return None
    return "; ".join(
        f"{r.reason.value}: {r.message}" + (f" (VO {r.vo})" if r.vo else "")
        for r in ident.rejected_acs
    )


def finish_fault(fault: ServiceFault, environ: dict[str, Any]) -> ServiceFault:
    """Tag a fault with the request id and, for refusals, the ignored ACs' problem."""
    problem = ac_problem(environ.get(ENV_IDENTITY))
    if problem and fault.CODE in _REFUSALS and "ac_problem" not in fault.info:
        note = f" (an attribute certificate was ignored: {problem})"
        fault.info["message"] += note
        fault.faultstring = str(fault.faultstring) + note
        fault.add(ac_problem=problem)
    fault.set_request_id(environ.get(ENV_REQUEST_ID, ""))
    environ[ENV_FAULT] = fault.CODE
    return fault


class SoapWsgi(WsgiApplication):  # type: ignore[misc]
    """spyne's WSGI application whose every error answer is a declared fault."""

    def __init__(self, app: Application, errors: ErrorTable, max_bytes: int) -> None:
        super().__init__(app, max_content_length=max_bytes)
        self.errors = errors

    def handle_error(self, p_ctx: Any, others: Any, error: Any, start_response: Any) -> Any:
        fault = finish_fault(self.declared(error), p_ctx.transport.req_env)
        p_ctx.out_error = fault
        if p_ctx.in_error is not None:
            p_ctx.in_error = fault
        return super().handle_error(p_ctx, others, fault, start_response)

    def declared(self, error: Any) -> ServiceFault:
        faults = self.errors.faults
        if isinstance(error, ServiceFault) and faults.declared(error):
            return error
        if isinstance(error, Fault) and not isinstance(error, ServiceFault):
            code = str(error.faultcode).split(":")[-1]  # spyne's own: Client.ValidationError...
            message = str(error.faultstring)[:2000]
            if code.startswith("Client.ValidationError") or code.startswith("Client.Schema"):
                return faults.ValidationFault(message)
            if code.startswith("Client"):
                return faults.MalformedRequestFault(message)
        out = self.errors.to_fault(error)
        return out if isinstance(out, ServiceFault) else faults.InternalFault(str(out))


def soap_application(
    services: Sequence[type[ServiceBase]], ns: str, name: str, **shared: Any
) -> Application:
    """A spyne application (SOAP 1.1, soft validation); ``shared`` become attributes
    the operations read from ``ctx.app`` (e.g. ``gproc=...``)."""
    soap_in, soap_out = Soap11(validator="soft"), Soap11()
    app = Application(list(services), tns=ns, name=name, in_protocol=soap_in, out_protocol=soap_out)
    for key, value in shared.items():
        setattr(app, key, value)
    return app


def soap_stack(
    app: Application,
    errors: ErrorTable,
    operations: Iterable[str],
    *,
    access_logger: str,
    max_bytes: int,
    max_depth: int,
    metrics: MetricsEndpoint | None = None,
    routes: Mapping[str, WSGIApp] | None = None,
    service: str | None = None,
) -> WSGIApp:
    """The WSGI stack of a SOAP service below identity: access log, guard, spyne;
    ``metrics`` answers ``GET /metrics`` and ``routes`` their paths, before the guard;
    ``service`` is the metrics label (default: from ``access_logger``)."""
    guarded = XmlGuard(
        SoapWsgi(app, errors, max_bytes),
        errors.faults,
        max_bytes=max_bytes,
        max_depth=max_depth,
        operations=operations,
    )
    return AccessLog(guarded, access_logger, service=service, metrics=metrics, routes=routes)


def identity_of(ctx: Any, errors: ErrorTable) -> Identity:
    """The caller's validated TLS identity, or the service's NotAuthenticated fault."""
    env = ctx.transport.req_env
    ident: Identity | None = env.get(ENV_IDENTITY)
    if ident is None:
        raise errors.faults.NotAuthenticatedFault(
            env.get(ENV_AUTH_ERROR) or "no valid client credential"
        )
    return ident


class FaultingService(ServiceBase):  # type: ignore[misc]
    """A spyne service base whose operations' errors become the front's faults:
    subclasses set ``ERRORS`` (their :class:`ErrorTable`)."""

    ERRORS: ErrorTable

    @classmethod
    def call_wrapper(cls, ctx: Any, args: Any = None) -> Any:
        try:
            return super().call_wrapper(ctx, args)
        except Exception as exc:  # noqa: BLE001 - all errors become faults
            raise cls.ERRORS.to_fault(exc) from None

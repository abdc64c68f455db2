"""The ``/wps`` endpoint: WPS 2.0 and WPS 1.0.0 on one URL, chosen per request.

KVP (GET): ``service=WPS`` and ``request`` are required; GetCapabilities negotiates
the version (``AcceptVersions``, first one offered wins; else ``version``; else
2.0.0); every other request names its ``version`` (1.0.0 or 2.0.0). XML (POST): the
root element's namespace decides. ``/wps/status/{job id}`` is WPS 1.0.0's
statusLocation. Errors are ExceptionReports of the version the request speaks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from gproc import errors
from gproc.domain import InvalidTaskRequest
from gproc.services.chassis.guard import ENV_OPERATION
from gproc.services.ogc.front import JobOptions
from gproc.services.ogc.workflows import WorkflowProcesses
from gproc.services.ogc.wps1 import OPERATIONS as WPS1_OPERATIONS
from gproc.services.ogc.wps1 import STATUS_PATH, Wps1
from gproc.services.ogc.wps2 import OPERATIONS as WPS2_OPERATIONS
from gproc.services.ogc.wps2 import Wps2
from gproc.services.ogc.wps_common import (
    WPS10,
    WPS20,
    Kvp,
    OperationNotSupported,
    VersionNegotiationFailed,
    XmlReply,
    read_xml,
    respond,
)
from gproc.services.soap.service import ServiceContext
from gproc.settings import OgcSettings

ENV_VERSION = "gproc.wps_version"
VERSIONS = {"2.0.0": 2, "1.0.0": 1}
NAMESPACES = {WPS20: 2, WPS10: 1}


class WpsApp:
    """WSGI application for ``/wps`` and ``/wps/status/...``."""

    def __init__(
        self,
        gp: ServiceContext,
        ogc: OgcSettings,
        options: JobOptions,
        workflows: WorkflowProcesses | None = None,
    ) -> None:
        self.v1 = Wps1(gp, ogc, options, workflows)
        self.v2 = Wps2(gp, ogc, options, workflows)
        self.max_bytes = ogc.max_body_bytes
        self.max_depth = gp.settings.service.max_depth

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        return respond(environ, start_response, self._handle, lambda e: e.get(ENV_VERSION, 2))

    def _handle(self, environ: dict[str, Any]) -> XmlReply:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith(STATUS_PATH):
            environ[ENV_VERSION] = 1
            environ[ENV_OPERATION] = "wps1.status"
            if method not in ("GET", "HEAD"):
                raise OperationNotSupported(f"{method} is not offered here", field="method")
            return self.v1.status(environ, path[len(STATUS_PATH) :])
        if path.rstrip("/") != "/wps":
            raise errors.NotFound(f"no resource at {path[:200]}", field="path")
        if method in ("GET", "HEAD"):
            return self._kvp(environ)
        if method == "POST":
            return self._xml(environ)
        raise OperationNotSupported(f"{method} is not offered here", field="method")

    def _kvp(self, environ: dict[str, Any]) -> XmlReply:
        kvp = Kvp(environ.get("QUERY_STRING", ""))
        service = kvp.require("service")
        if service != "WPS":
            raise InvalidTaskRequest("service", "service is WPS")
        request = kvp.require("request")
        if request == "GetCapabilities":
            version = _negotiate(kvp)
        else:
            raw = kvp.require("version")
            if raw not in VERSIONS:
                raise InvalidTaskRequest("version", "version is 2.0.0 or 1.0.0")
            version = VERSIONS[raw]
        environ[ENV_VERSION] = version
        environ[ENV_OPERATION] = _operation(version, request)
        front = self.v2 if version == 2 else self.v1
        return front.get(environ, kvp, request)

    def _xml(self, environ: dict[str, Any]) -> XmlReply:
        root = read_xml(environ, self.max_bytes, self.max_depth)
        qname = etree.QName(root)
        version = NAMESPACES.get(qname.namespace or "")
        if version is None:
            raise OperationNotSupported(
                f"not a WPS 2.0 or 1.0.0 request: {qname.text[:120]}", field="request"
            )
        environ[ENV_VERSION] = version
        environ[ENV_OPERATION] = _operation(version, qname.localname)
        if root.get("service", "WPS") != "WPS":
            raise InvalidTaskRequest("service", "service is WPS")
        front = self.v2 if version == 2 else self.v1
        return front.post(environ, root)


def _operation(version: int, request: str) -> str:
    """The access log's and metrics' operation name: a declared one, never a user string."""
    known = WPS2_OPERATIONS if version == 2 else WPS1_OPERATIONS
    return f"wps{version}.{request if request in known else 'unknown'}"


def _negotiate(kvp: Kvp) -> int:
    accept = kvp.get("AcceptVersions")
    if accept:
        for v in accept.split(","):
            if v.strip() in VERSIONS:
                return VERSIONS[v.strip()]
        raise VersionNegotiationFailed(
            f"none of {accept[:80]!r} is offered (2.0.0, 1.0.0)", field="AcceptVersions"
        )
    raw = kvp.get("version")
    if raw is None:
        return 2
    if raw not in VERSIONS:
        raise VersionNegotiationFailed(f"version {raw[:20]!r} is not offered", field="version")
    return VERSIONS[raw]

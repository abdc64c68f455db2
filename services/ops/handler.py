"""``/ops/``: the dashboard's JSON endpoint and page on a gproc front (mounted by the
processing service under the chassis access log, beside ``/metrics``).

* ``GET /ops/summary[?window_s=N&bucket_s=M]``: the figures as JSON (``views``);
* ``GET /ops/`` and ``/ops/<asset>``: the page and its scripts (``static/``).

Only grid administrators (:class:`~gproc.services.chassis.metrics.Operators`: a
configured admin DN or ``[vo] admin_role`` in a VO) get either; a caller without a
credential gets 401, anyone else 403, both with a JSON ``{"status", "error"}``.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.engine import Engine

from gproc import operations
from gproc.security.wsgi_auth import ENV_AUTH_ERROR, ENV_IDENTITY
from gproc.services.chassis.guard import ENV_FAULT, ENV_OPERATION
from gproc.services.chassis.metrics import Operators
from gproc.services.ops.health import probe_all, probe_context
from gproc.services.ops.views import summary_json
from gproc.wrappers.base import WorkloadManager

PREFIX = "/ops/"
ASSETS = {"": "index.html", "index.html": "index.html", "dashboard.js": "dashboard.js",
          "dashboard.css": "dashboard.css"}  # fmt: skip
_SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'"),
]


def asset(name: str) -> tuple[bytes, str]:
    """One file of the page (``index.html``, ``dashboard.js``, ``dashboard.css``) and its
    content type, for a front that serves the page itself (the portal)."""
    if name not in ASSETS.values():
        raise KeyError(name)
    body = resources.files("gproc.services.ops").joinpath("static", name).read_bytes()
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype.endswith("javascript"):
        ctype += "; charset=utf-8"
    return body, ctype


class BadQuery(ValueError):
    pass


@dataclass
class OpsApp:
    """The WSGI app under ``/ops/``."""

    engine: Engine
    wms: WorkloadManager | None
    operators: Operators
    probes: Mapping[str, str] = field(default_factory=dict)
    probe_context: Any = None  # ssl.SSLContext for the probes
    probe_timeout_s: float = 3.0
    window_s: int = 24 * 3600
    bucket_s: int = 3600

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = (environ.get("PATH_INFO") or "/")[len(PREFIX) :]
        environ[ENV_OPERATION] = "ops.summary" if path == "summary" else "ops.page"
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._error(environ, start_response, 405, "only GET")
        ident = environ.get(ENV_IDENTITY)
        if ident is None:
            why = environ.get(ENV_AUTH_ERROR) or "no valid client credential"
            return self._error(environ, start_response, 401, f"not authenticated: {why}")
        if not self.operators.is_admin(ident):
            return self._error(
                environ,
                start_response,
                403,
                f"{ident.subject_grid} is not a grid administrator: the dashboard needs the "
                f"role {self.operators.admin_role} in a VO (/<vo>/Role="
                f"{self.operators.admin_role}) or a configured administrator DN",
            )
        if path == "summary":
            try:
                window = self._window(environ.get("QUERY_STRING", ""))
            except BadQuery as exc:
                return self._error(environ, start_response, 400, str(exc))
            return self._json(start_response, 200, self.summary(window))
        asset = ASSETS.get(path)
        if asset is None:
            return self._error(environ, start_response, 404, f"no such page: {PREFIX}{path}"[:200])
        return self._asset(start_response, asset)

    def summary(self, window: operations.Window) -> dict[str, Any]:
        figures = operations.summarise(self.engine, self.wms, window)
        health = probe_all(self.probes, self.probe_context, self.probe_timeout_s)
        return summary_json(figures, health)

    def _window(self, query: str) -> operations.Window:
        q = parse_qs(query, max_num_fields=8)
        window_s = _int(q, "window_s", self.window_s, 60, 90 * 24 * 3600)
        bucket_s = _int(q, "bucket_s", self.bucket_s, 10, 24 * 3600)
        if window_s // bucket_s > operations.MAX_BUCKETS:
            raise BadQuery(
                f"window_s/bucket_s gives more than {operations.MAX_BUCKETS} buckets: "
                "choose a larger bucket_s"
            )
        return operations.Window.last(window_s, bucket_s)

    def _asset(self, start_response: Callable[..., Any], name: str) -> list[bytes]:
        body, ctype = asset(name)
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
        start_response("200 OK", [*headers, *_SECURITY_HEADERS])
        return [body]

    def _error(
        self, environ: dict[str, Any], start_response: Callable[..., Any], code: int, msg: str
    ) -> list[bytes]:
        environ[ENV_FAULT] = f"http.{code}"
        return self._json(start_response, code, {"status": code, "error": msg})

    @staticmethod
    def _json(start_response: Callable[..., Any], code: int, doc: Any) -> list[bytes]:
        body = json.dumps(doc).encode()
        status = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized",
                  403: "403 Forbidden", 404: "404 Not Found",
                  405: "405 Method Not Allowed"}[code]  # fmt: skip
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(status, [*headers, *_SECURITY_HEADERS])
        return [body]


def _int(q: dict[str, list[str]], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if not raw:
        return default
    text = raw[0]
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise BadQuery(f"{name} must be a whole number of seconds from {lo} to {hi}")
    return int(text)


def build_ops_app(settings: Any, engine: Engine, wms: WorkloadManager | None) -> OpsApp:
    """The ``/ops/`` app of a front from its settings (``[vo]``, ``[metrics]``,
    ``[service]`` TLS files for the probes)."""
    conf, svc = settings.metrics, settings.service
    ctx = probe_context(svc.ca_dir, svc.cert, svc.key) if conf.probe else None
    return OpsApp(
        engine,
        wms,
        Operators.from_settings(settings),
        probes=dict(conf.probe),
        probe_context=ctx,
        probe_timeout_s=conf.probe_timeout_s,
        window_s=conf.window_s,
        bucket_s=conf.bucket_s,
    )

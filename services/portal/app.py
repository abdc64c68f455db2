"""The portal's WSGI application: routing, sessions and CSRF, pages (jinja2 with
autoescape), security headers and error pages.

A request carries at most a session cookie (``__Host-gproc``: Secure, HttpOnly,
SameSite=Strict, path /); everything else (the user's proxy above all) stays in the
server-side store. Every POST carries the session's CSRF token (the login forms a
token bound to a pre-login cookie); a POST without the right one changes nothing.
The views (``views_*.py``) call gproc's services through :class:`UserClients`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gproc.errors import GprocError, InvalidRequest, NotAuthenticated
from gproc.errors import NotFound as GNotFound
from gproc.security.chain import Validator
from gproc.services.portal.clients import (
    ClientCache,
    Clients,
    ServiceDown,
    ServiceRefused,
    UserClients,
)
from gproc.services.portal.sessions import (
    SessionInfo,
    SessionStore,
    Submissions,
    csrf_ok,
    session_key,
)

HERE = Path(__file__).parent
REPO_NODE_MODULES = HERE / "node_modules"  # npm ci in services/portal (bin/setup)
COOKIE = "__Host-gproc"
LOGIN_COOKIE = "__Host-gproc-login"
LOG = logging.getLogger("gproc.portal")
# (username, passphrase, vo, role) -> PEM proxy with the VO's attributes
SignOn = Callable[[str, str, str, str | None], bytes]
View = Callable[["Ctx"], Response]
NOT_FOUND_CODES = {"Client.NotAuthorised", "Client.UnknownTask", "Client.UnknownWorkflow"}
NOT_FOUND_CODES |= {"Client.NotFound", "Client.DatasetNotFound", "Client.TaskNotFound"}


@dataclass
class PortalConfig:
    """What the pages need from the settings."""

    vos: list[str] = field(default_factory=lambda: ["gisheo"])
    base_layer_url: str | None = None
    base_layer_attribution: str = ""
    vendor_dir: Path | None = None
    max_upload_bytes: int = 16 * 1024 * 1024
    ops_enabled: bool = False
    admin_role: str = "VO-Admin"


class Ctx:
    """One request: the werkzeug request, the session (if any) and the user's clients."""

    def __init__(self, portal: Portal, request: Request, args: Mapping[str, Any]) -> None:
        self.portal = portal
        self.request = request
        self.args = args
        cookie = request.cookies.get(COOKIE)
        self.session: SessionInfo | None = portal.store.get(cookie)
        if cookie and self.session is None:  # ended (here or in another replica)
            portal.cache.drop(session_key(cookie))
        self._api: UserClients | None = None

    @property
    def api(self) -> UserClients:
        """The signed-in user's clients (NotAuthenticated when signed out)."""
        if self.session is None:
            raise NotAuthenticated("sign in first")
        if self._api is None:
            session = self.session
            self._api = self.portal.cache.get(session.key, lambda: self.portal.store.proxy(session))
        return self._api

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        page = self.portal.env.get_template(template).render(
            session=self.session, config=self.portal.config, path=self.request.path, **values
        )
        return Response(page, status=status, mimetype="text/html")

    def json(self, value: Any, status: int = 200) -> Response:
        return Response(json.dumps(value, default=str), status=status, mimetype="application/json")

    def form(self, name: str, default: str = "") -> str:
        return str(self.request.form.get(name, default))


class Portal:
    """The WSGI application; collaborators are given at construction."""

    def __init__(
        self,
        store: SessionStore,
        clients: Clients,
        validator: Validator,
        config: PortalConfig,
        *,
        sign_on: SignOn | None = None,
        submissions: Submissions | None = None,
    ) -> None:
        from gproc.services.portal import (
            views_admin,
            views_auth,
            views_data,
            views_tasks,
            views_workflows,
        )

        self.store = store
        self.cache = ClientCache(clients)
        self.submissions = submissions or Submissions(store.engine)
        self.clients = clients
        self.validator = validator
        self.config = config
        self.sign_on = sign_on
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")), autoescape=True, trim_blocks=True
        )
        self.views: dict[str, tuple[View, bool]] = {}  # endpoint -> (view, needs session)
        rules: list[Rule] = []
        for module in (views_auth, views_data, views_tasks, views_workflows, views_admin):
            for path, methods, view, needs in module.ROUTES:
                rules.append(Rule(path, endpoint=view.__name__, methods=methods))
                self.views[view.__name__] = (view, needs)
        self.urls = Map(rules, strict_slashes=False)
        shared = {"/static": str(HERE / "static")}
        vendor = config.vendor_dir or REPO_NODE_MODULES
        self.has_leaflet = (vendor / "leaflet" / "dist").is_dir()
        if self.has_leaflet:
            shared["/vendor/leaflet"] = str(vendor / "leaflet" / "dist")
        self._wsgi = SharedDataMiddleware(self._app, shared, cache_timeout=3600)
        self.csp = _csp(config.base_layer_url)

    def end_session(self, session_id: str | None) -> None:
        """Sign-out (or a new sign-in): the row, its proxy and the cached clients go."""
        if session_id:
            self.store.destroy(session_id)
            self.cache.drop(session_key(session_id))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self._wsgi(environ, start_response)  # type: ignore[no-any-return]

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = self.config.max_upload_bytes + 65536
        response = self._dispatch(request)
        _harden(response, self.csp)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = self.urls.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except HTTPException as exc:
            return _plain(exc)
        view, needs_session = self.views[str(endpoint)]
        try:
            ctx = Ctx(self, request, args)
        except HTTPException as exc:
            return _plain(exc)
        try:
            if needs_session and ctx.session is None:
                if request.path.startswith("/api/"):
                    return ctx.json({"error": "sign in first"}, 401)
                return redirect("/login")
            if request.method == "POST" and needs_session and not self._csrf(ctx):
                return ctx.render("error.html", 403, message=CSRF_MESSAGE)
            return view(ctx)
        except HTTPException as exc:
            return _plain(exc)
        except GprocError as err:
            return self._error(ctx, err)

    def _csrf(self, ctx: Ctx) -> bool:
        assert ctx.session is not None
        return csrf_ok(ctx.session, ctx.request.form.get("csrf"))

    def _error(self, ctx: Ctx, err: GprocError) -> Response:
        status = _status(err)
        if status == 401 and not ctx.request.path.startswith("/api/"):
            return redirect("/login")
        message, code = str(err), getattr(err, "service_code", err.code)
        if status == 404:
            message = "No such page, or it is not yours."
        LOG.info(json.dumps({"path": ctx.request.path, "status": status, "code": code}))
        if ctx.request.path.startswith("/api/"):
            return ctx.json({"error": message, "field": err.field, "code": code}, status)
        return ctx.render("error.html", status, message=message, code=code)


CSRF_MESSAGE = (
    "This form did not come from your portal session (missing or wrong CSRF token): "
    "nothing was done. Reload the page and try again."
)


def _status(err: GprocError) -> int:
    if isinstance(err, NotAuthenticated):
        return 401
    if isinstance(err, GNotFound) or getattr(err, "service_code", err.code) in NOT_FOUND_CODES:
        return 404
    if isinstance(err, ServiceDown):
        return 503
    if isinstance(err, InvalidRequest | ServiceRefused):
        return 400
    return 500 if not err.retryable else 503


def _plain(exc: HTTPException) -> Response:
    if isinstance(exc, NotFound):
        return Response("not found", status=404, mimetype="text/plain")
    response = exc.get_response()
    return Response(response.get_data(), status=response.status_code, mimetype="text/html")


def _csp(base_layer_url: str | None) -> str:
    """Scripts, styles and images from the portal only (plus the base layer's host)."""
    tiles = ""
    if base_layer_url and base_layer_url.startswith("https://"):
        tiles = " " + "/".join(base_layer_url.split("/")[:3]).replace("{s}", "*")
    return (
        f"default-src 'self'; img-src 'self' data: blob:{tiles}; style-src 'self'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


def _harden(response: Response, csp: str) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", csp)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not response.headers.get("Cache-Control"):
        headers["Cache-Control"] = "no-store"


def set_session_cookie(response: Response, session_id: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE, session_id, max_age=max_age, secure=True, httponly=True, samesite="Strict"
    )
    response.delete_cookie(LOGIN_COOKIE, secure=True, httponly=True, samesite="Strict")


def need(value: str, field_name: str, what: str) -> str:
    """A required form value, else a clear InvalidRequest naming the field."""
    if not value.strip():
        raise InvalidRequest(f"{what}: required", field=field_name)
    return value.strip()

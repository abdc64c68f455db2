"""Signing in and out: MyProxy username + passphrase + VO/role, or an uploaded proxy.

Either way the proxy is validated with gproc's chain validator before a session is
made; the session id is new at every sign-in (an id the browser brings is never
adopted, and a previous session of this browser is ended), and the proxy goes into
the server-side store only.
"""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from gproc.errors import CredentialRefused, GprocError, InvalidRequest, Unavailable
from gproc.security.errors import CredentialError
from gproc.services.portal.app import COOKIE, LOGIN_COOKIE, Ctx, need, set_session_cookie
from gproc.services.portal.sessions import csrf_ok

MAX_PROXY_BYTES = 64 * 1024


def index(ctx: Ctx) -> Response:
    return redirect("/map" if ctx.session else "/login")


def login_page(ctx: Ctx, status: int = 200, error: str | None = None, **values: str) -> Response:
    token = ctx.request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = ctx.render(
        "login.html",
        status,
        error=error,
        login_csrf=token,
        values=values,
        myproxy=ctx.portal.sign_on is not None,
    )
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, secure=True, httponly=True, samesite="Strict"
    )
    return response


def _login_csrf_ok(ctx: Ctx) -> bool:
    cookie = ctx.request.cookies.get(LOGIN_COOKIE)
    given = ctx.request.form.get("csrf")
    return bool(cookie) and given is not None and _same(cookie or "", given)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def login_myproxy(ctx: Ctx) -> Response:
    if not _login_csrf_ok(ctx):
        return login_page(ctx, 403, CSRF_LOGIN)
    sign_on = ctx.portal.sign_on
    username, vo, role = ctx.form("username"), ctx.form("vo"), ctx.form("role").strip()
    if sign_on is None:
        return login_page(ctx, 400, "MyProxy sign-on is not configured here: upload a proxy.")
    try:
        user = need(username, "username", "username")
        passphrase = need(ctx.form("passphrase"), "passphrase", "passphrase")
        vo = need(vo, "vo", "VO")
        if vo not in ctx.portal.config.vos:
            raise InvalidRequest(f"VO: not one of {', '.join(ctx.portal.config.vos)}", field="vo")
        pem = sign_on(user, passphrase, vo, role or None)
    except CredentialRefused:
        return login_page(ctx, 401, WRONG_PASSPHRASE, username=username, vo=vo, role=role)
    except Unavailable as err:
        what = MYPROXY_DOWN if err.code == "Server.MyProxyUnavailable" else SIGN_ON_DOWN
        return login_page(ctx, 503, f"{what} ({err})", username=username, vo=vo)
    except GprocError as err:
        return login_page(ctx, 400, str(err), username=username, vo=vo, role=role)
    return _start(ctx, pem)


def login_upload(ctx: Ctx) -> Response:
    if not _login_csrf_ok(ctx):
        return login_page(ctx, 403, CSRF_LOGIN)
    upload = ctx.request.files.get("proxy")
    if upload is None or not upload.filename:
        return login_page(ctx, 400, "proxy: choose your proxy file (X509_USER_PROXY)")
    pem = upload.stream.read(MAX_PROXY_BYTES + 1)
    if len(pem) > MAX_PROXY_BYTES:
        return login_page(ctx, 400, "proxy: the file is too large to be a proxy")
    return _start(ctx, pem)


def _start(ctx: Ctx, pem: bytes) -> Response:
    try:
        ident = ctx.portal.validator.validate(pem)
        _check_key(pem)
    except (CredentialError, ValueError) as exc:
        return login_page(ctx, 401, f"The proxy was refused: {exc}")
    if ident.not_after <= datetime.now(UTC):
        return login_page(ctx, 401, "The proxy has expired.")
    admin_role = ctx.portal.config.admin_role
    fqans = tuple(str(f) for f in ident.fqans)
    ctx.portal.end_session(ctx.request.cookies.get(COOKIE))  # no session carried over
    session_id = ctx.portal.store.create(
        pem,
        dn=ident.subject_grid,
        vo=ident.vo,
        fqans=fqans,
        is_admin=any(f.role == admin_role for f in ident.fqans),
        proxy_not_after=ident.not_after,
    )
    response = redirect("/map", code=303)
    set_session_cookie(response, session_id, int(ctx.portal.store.max.total_seconds()))
    return response


def _check_key(pem: bytes) -> None:
    """The upload holds the private key of its first certificate (else it cannot act)."""
    block = _KEY_BLOCK.search(pem)
    if block is None:
        raise ValueError("the file holds no private key (a proxy file has one)")
    key = serialization.load_pem_private_key(block.group(0), password=None)
    leaf = x509.load_pem_x509_certificates(pem)[0]
    if leaf.public_key().public_bytes(*_SPKI) != key.public_key().public_bytes(*_SPKI):
        raise ValueError("the private key does not belong to the proxy certificate")


_KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.+?-----END \1-----", re.S)
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def logout(ctx: Ctx) -> Response:
    ctx.portal.end_session(ctx.request.cookies.get(COOKIE))
    response = redirect("/login", code=303)
    response.delete_cookie(COOKIE, secure=True, httponly=True, samesite="Strict")
    return response


def logout_post(ctx: Ctx) -> Response:
    session = ctx.session
    if session is not None and not csrf_ok(session, ctx.request.form.get("csrf")):
        return ctx.render("error.html", 403, message=CSRF_LOGIN)
    return logout(ctx)


CSRF_LOGIN = (
    "This form did not come from this portal (missing or wrong CSRF token): nothing was "
    "done. Reload the page and try again."
)
WRONG_PASSPHRASE = "MyProxy refused the username or passphrase. Nothing was stored."  # noqa: S105
MYPROXY_DOWN = "The MyProxy credential store cannot be reached just now; try again later"
SIGN_ON_DOWN = "Sign-on cannot complete just now (the VO's attribute service); try again later"

ROUTES = [
    ("/", ["GET"], index, False),
    ("/login", ["GET"], login_page, False),
    ("/login", ["POST"], login_myproxy, False),
    ("/login/proxy", ["POST"], login_upload, False),
    ("/logout", ["POST"], logout_post, False),
]

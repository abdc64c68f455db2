"""Single sign-on: username + passphrase -> a VOMS proxy, through MyProxy.

What a portal's login form needs: a MyProxy logon for a short proxy of the user's
stored credential (:func:`gproc.security.myproxy.logon`), then the user's VOMS
attributes for the VO and role chosen at login, asked of the VO's VOMS server with
that proxy (gproc's attribute authority, or any VOMS server of a vomses file, as
``voms-proxy-init`` asks it), then a proxy of that proxy carrying the AC. The result
is checked with gproc's own validator (CA directory + vomsdir) before it is handed
out, so a portal never holds a proxy relying parties would refuse.

The proxy is written to disk only for the TLS handshake with the VOMS server, in a
private temporary directory (0700, file 0600) removed at once. Passphrases and
proxies never reach a log or an error message.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from gproc import errors
from gproc.security.chain import Validator
from gproc.security.credentials import Credential, load_credential, make_proxy, write_private
from gproc.security.errors import SecurityError
from gproc.security.identity import grid_dn
from gproc.security.myproxy import MyProxyServer, logon
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust
from gproc.services.voms_client import VomsClientError, Vomses, request_ac, servers_for
from gproc.settings import Settings

__all__ = [
    "NotConfigured",
    "VomsRefused",
    "VomsUnavailable",
    "myproxy_server",
    "sign_on",
    "voms_server_for",
    "with_voms",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REFUSALS = {"NoSuchUser", "SuspendedUser", "NoSuchAttribute", "BadRequest"}


class VomsRefused(errors.NotAuthorised):
    """The VOMS server refused the attributes: not a member, suspended, no such role."""

    code = "Client.VomsRefused"


class VomsUnavailable(errors.Unavailable):
    """The VOMS server could not be reached or is not the one expected."""

    code = "Server.VomsUnavailable"


class NotConfigured(errors.Internal):
    """The service has no MyProxy server or no VOMS server for the VO."""

    code = "Server.NotConfigured"


def myproxy_server(settings: Settings) -> MyProxyServer:
    """The configured MyProxy server (``[myproxy]``, trust from ``[service]``)."""
    mp = settings.myproxy
    ca_dir = mp.ca_dir or settings.service.ca_dir
    if mp.host is None or ca_dir is None:
        raise NotConfigured("MyProxy is not configured here ([myproxy] host, ca_dir)")
    return MyProxyServer(
        mp.host, ca_dir, port=mp.port, server_dn=mp.server_dn, timeout_s=mp.timeout_s
    )


def voms_server_for(settings: Settings, vo: str) -> Vomses:
    """The VOMS server of ``vo``: the first line of ``[myproxy] vomses`` for it, else
    gproc's own VOMS endpoint when ``[vo] vo`` is that VO."""
    if settings.myproxy.vomses is not None:
        try:
            return servers_for(settings.myproxy.vomses, vo)[0]
        except VomsClientError as exc:
            raise NotConfigured(exc.message, field="vo") from None
    own = settings.vo
    if own.vo != vo or own.aa_cert is None:
        raise NotConfigured(f"no VOMS server for VO {vo!r} here", field="vo")
    try:
        cert = x509.load_pem_x509_certificate(own.aa_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise NotConfigured(f"cannot read [vo] aa_cert {own.aa_cert}: {exc}") from None
    host = "127.0.0.1" if own.voms_host in ("0.0.0.0", "::") else own.voms_host  # noqa: S104
    return Vomses(vo, host, own.voms_port, grid_dn(cert.subject), vo)


def sign_on(
    settings: Settings,
    username: str,
    passphrase: str,
    vo: str,
    role: str | None = None,
    *,
    lifetime_s: int | None = None,
) -> bytes:
    """A VOMS proxy of MyProxy user ``username`` with the attributes of ``vo`` (the
    VO root group, plus ``Role=role`` in it when given): a PEM proxy file
    (certificate, key, chain), valid ``lifetime_s`` (default ``[myproxy]
    logon_lifetime_s``) or less if the server or the AC is shorter.

    Errors: MyProxyRefused (username/passphrase), MyProxyUnavailable, VomsRefused,
    VomsUnavailable, NotConfigured, InvalidRequest (a bad VO or role name)."""
    for what, value in (("vo", vo), ("role", role)):
        if value is not None and not _NAME.match(value):
            raise errors.InvalidRequest(f"{what} must match {_NAME.pattern}", field=what)
    lifetime = lifetime_s or settings.myproxy.logon_lifetime_s
    voms_server_for(settings, vo)  # refuse an unknown VO before asking MyProxy
    proxy_pem = logon(myproxy_server(settings), username, passphrase, lifetime)
    return with_voms(settings, proxy_pem, vo, [f"/{vo}/Role={role}"] if role else [], lifetime)


def with_voms(
    settings: Settings, proxy_pem: bytes, vo: str, fqans: Sequence[str], lifetime_s: int
) -> bytes:
    """A proxy of ``proxy_pem`` (certificate, key, chain) carrying the AC the VOMS
    server of ``vo`` issues for ``fqans`` (empty: the VO root group), checked by
    gproc's validator. Also used to give a renewed proxy its attributes back."""
    voms = voms_server_for(settings, vo)
    ca_dir = settings.myproxy.ca_dir or settings.service.ca_dir
    if ca_dir is None:
        raise NotConfigured("no CA directory ([myproxy] or [service] ca_dir)")
    with tempfile.TemporaryDirectory(prefix="gproc-voms-") as tmp:
        path = Path(tmp) / "proxy.pem"
        write_private(path, proxy_pem, 0o600)
        proxy = load_credential(path)
        ac = _attributes(voms, path, ca_dir, vo, fqans, lifetime_s)
    final = make_proxy(proxy, hours=lifetime_s / 3600, acs=[ac])
    _check(settings, ca_dir, final)
    return final.proxy_pem()


def _attributes(
    voms: Vomses, proxy: Path, ca_dir: Path, vo: str, fqans: Sequence[str], lifetime_s: int
) -> bytes:
    try:
        return request_ac(voms, proxy, proxy, ca_dir, fqans, lifetime_s)
    except VomsClientError as exc:
        if exc.code in _REFUSALS:
            raise VomsRefused(f"VO {vo}: {exc.message}", rule=exc.code) from None
        raise VomsUnavailable(f"VOMS server of {vo}: {exc.message}", rule=exc.code) from None


def _check(settings: Settings, ca_dir: Path, proxy: Credential) -> None:
    vomsdir = settings.myproxy.vomsdir or settings.service.vomsdir
    if vomsdir is None:
        raise NotConfigured("no vomsdir to check VOMS attributes ([myproxy] or [service])")
    try:
        ident = Validator(TrustStore(ca_dir), VomsTrust(vomsdir)).validate(proxy.chain_pem())
    except SecurityError as exc:
        raise errors.Internal(f"the sign-on proxy does not validate here: {exc}") from None
    if ident.rejected_acs or not ident.acs:
        why = ident.rejected_acs[0].describe() if ident.rejected_acs else "no AC"
        raise errors.Internal(f"the VOMS attributes do not verify here: {why}")

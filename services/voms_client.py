"""``gproc proxy-init``'s half of the VOMS protocol: ask a VOMS endpoint (gproc's or
any VOMS server speaking REST) for an AC, then make an RFC 3820 proxy carrying it.

The request is the one ``voms-proxy-init`` sends (``GET /generate-ac?fqans=..&
lifetime=..``) over TLS with the user's certificate. The server is identified the way
VOMS clients identify it: its certificate must validate against the CA directory and
its subject must be the server DN of the vomses line (the host name in that line is
only where to connect, so a line naming ``127.0.0.1`` works). The proxy is then
checked with the project's own validator (CA directory + vomsdir LSC files) before it
is written, so a user never gets a proxy whose AC relying parties would reject.
Every failure is a :class:`VomsClientError` with a one-line message.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from lxml import etree

from gproc.security.chain import Validator
from gproc.security.credentials import Credential, load_credential, make_proxy
from gproc.security.errors import SecurityError
from gproc.security.identity import Identity, grid_dn, same_dn
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust
from gproc.services.chassis.guard import hardened_parser

MAX_ANSWER = 1 << 20


class VomsClientError(Exception):
    """proxy-init failed: the endpoint refused (``code`` from its error document), was
    unreachable, untrusted or answered nonsense, or a local file was unusable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Vomses:
    """One vomses line: "alias" "host" "port" "server DN" "vo" ["version"]."""

    alias: str
    host: str
    port: int
    server_dn: str
    vo: str


def read_vomses(path: Path) -> list[Vomses]:
    """The lines of a vomses file; VomsClientError naming the file and line if bad."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise VomsClientError("BadVomses", f"cannot read vomses file {path}: {exc}") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split('"')[1::2]
        if len(fields) < 5 or not fields[2].isdigit() or not fields[3].startswith("/"):
            raise VomsClientError(
                "BadVomses",
                f'{path}, line {number}: not a vomses line ("alias" "host" "port" '
                f'"server DN" "vo" ["version"]): {line[:120]!r}',
            )
        out.append(Vomses(fields[0], fields[1], int(fields[2]), fields[3], fields[4]))
    return out


def servers_for(path: Path, vo: str) -> list[Vomses]:
    """The vomses entries of ``vo`` (by alias or VO name); VomsClientError if none."""
    servers = [s for s in read_vomses(path) if vo in (s.alias, s.vo)]
    if not servers:
        raise VomsClientError("NoServer", f"no server for VO {vo!r} in {path}")
    return servers


def _tls_context(cert: Path, key: Path, ca_dir: Path) -> ssl.SSLContext:
    """Chain checked against ``ca_dir``; no host name check (the DN check replaces it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(capath=str(ca_dir))
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise VomsClientError("BadCredential", f"cannot use {cert} / {key}: {exc}") from None
    return ctx


def _check_server_dn(sock: ssl.SSLSocket, server: Vomses) -> None:
    der = sock.getpeercert(binary_form=True)
    dn = grid_dn(x509.load_der_x509_certificate(der).subject) if der else "(no certificate)"
    if not same_dn(dn, server.server_dn):
        raise VomsClientError(
            "ServerDN",
            f"{server.host}:{server.port} presented {dn}, not the server DN "
            f"{server.server_dn} of the vomses line",
        )


def request_ac(
    server: Vomses,
    cert: Path,
    key: Path,
    ca_dir: Path,
    fqans: Sequence[str],
    lifetime_s: int,
    *,
    timeout_s: float = 30,
) -> bytes:
    """The DER AC ``server`` issues for ``fqans`` (empty: the VO root group)."""
    query = f"fqans={quote(','.join(fqans), safe='/=,')}&lifetime={int(lifetime_s)}"
    where = f"VOMS server {server.host}:{server.port}"
    conn = http.client.HTTPSConnection(
        server.host, server.port, context=_tls_context(cert, key, ca_dir), timeout=timeout_s
    )
    try:
        conn.connect()
        _check_server_dn(conn.sock, server)  # before anything is asked of it
        conn.request("GET", f"/generate-ac?{query}")
        resp = conn.getresponse()
        status, body = resp.status, resp.read(MAX_ANSWER + 1)
    except ssl.SSLCertVerificationError as exc:
        raise VomsClientError(
            "ServerUntrusted", f"{where}: certificate not trusted by {ca_dir}: {exc.verify_message}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise VomsClientError("Unreachable", f"{where}: {exc or type(exc).__name__}") from None
    finally:
        conn.close()
    return _ac_from_answer(status, body, where)


def _ac_from_answer(status: int, body: bytes, where: str) -> bytes:
    if len(body) > MAX_ANSWER:
        raise VomsClientError("BadAnswer", f"{where}: answer too large")
    try:
        root = etree.fromstring(body, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise VomsClientError("BadAnswer", f"{where}: HTTP {status}, not XML: {exc}") from None
    err = root.find("error")
    if err is not None:
        raise VomsClientError(err.findtext("code") or "Error", err.findtext("message") or "")
    text = root.findtext("ac")
    if status != 200 or not text:
        raise VomsClientError("BadAnswer", f"{where}: HTTP {status} without an AC")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VomsClientError("BadAnswer", f"{where}: the AC is not base64: {exc}") from None


def _user_credential(cert: Path, key: Path) -> Credential:
    try:
        return load_credential(cert, key)
    except OSError as exc:
        raise VomsClientError(
            "BadCredential", f"cannot read the user certificate or key: {exc}"
        ) from None
    except (ValueError, TypeError) as exc:
        raise VomsClientError(
            "BadCredential", f"unusable user certificate {cert} or key {key}: {exc}"
        ) from None


def proxy_init(
    cert: Path,
    key: Path,
    out: Path,
    *,
    server: Vomses,
    ca_dir: Path,
    vomsdir: Path,
    fqans: Sequence[str] = (),
    hours: float = 12,
) -> Identity:
    """Write an RFC 3820 proxy of the user certificate carrying the endpoint's AC and
    return the identity the project's validator sees in it."""
    user = _user_credential(cert, key)
    der = request_ac(server, cert, key, ca_dir, fqans, round(hours * 3600))
    proxy = make_proxy(user, hours=hours, acs=[der])
    try:
        validator = Validator(TrustStore(ca_dir), VomsTrust(vomsdir))
        ident = validator.validate(proxy.chain_pem())
    except SecurityError as exc:
        raise VomsClientError("UntrustedProxy", f"the new proxy does not validate: {exc}") from None
    if ident.rejected_acs or not ident.acs:
        why = ident.rejected_acs[0].describe() if ident.rejected_acs else "no AC"
        raise VomsClientError("UntrustedAC", f"the AC does not verify here: {why}")
    try:
        proxy.write_proxy(out)
    except OSError as exc:
        raise VomsClientError("CannotWrite", f"cannot write the proxy {out}: {exc}") from None
    return ident

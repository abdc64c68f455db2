"""``gproc proxy-init``'s half of the VOMS protocol: ask a VOMS endpoint (gproc's or
any VOMS server speaking REST) for an AC, then make an RFC 3820 proxy carrying it.

The request is the one ``voms-proxy-init`` sends (``GET /generate-ac?fqans=..&
lifetime=..``) over TLS with the user's certificate; the proxy is then checked with
the project's own validator (CA directory + vomsdir LSC files) before it is
written, so a user never gets a proxy whose AC relying parties would reject.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests
from lxml import etree

from gproc.security.chain import Validator
from gproc.security.identity import Identity
from gproc.security.pki import load_credential, make_proxy
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust
from gproc.services.chassis.guard import hardened_parser

MAX_ANSWER = 1 << 20


class VomsClientError(Exception):
    """The endpoint refused (``code`` from its error document) or answered nonsense."""

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
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split('"')[1::2]
        if len(fields) < 5 or not fields[2].isdigit():
            raise ValueError(f"{path}: bad vomses line {line[:120]!r}")
        out.append(Vomses(fields[0], fields[1], int(fields[2]), fields[3], fields[4]))
    return out


def request_ac(
    host: str,
    port: int,
    cert: Path,
    key: Path,
    ca_dir: Path,
    fqans: Sequence[str],
    lifetime_s: int,
    *,
    timeout_s: float = 30,
) -> bytes:
    """The DER AC the endpoint issues for ``fqans`` (empty: the VO root group)."""
    query = f"fqans={quote(','.join(fqans), safe='/=,')}&lifetime={int(lifetime_s)}"
    with requests.Session() as s:
        s.trust_env = False
        resp = s.get(
            f"https://{host}:{port}/generate-ac?{query}",
            cert=(str(cert), str(key)),
            verify=str(ca_dir),
            timeout=timeout_s,
            stream=True,
        )
        body = resp.raw.read(MAX_ANSWER + 1, decode_content=True)
    if len(body) > MAX_ANSWER:
        raise VomsClientError("BadAnswer", "answer too large")
    try:
        root = etree.fromstring(body, parser=hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise VomsClientError("BadAnswer", f"HTTP {resp.status_code}, not XML: {exc}") from None
    err = root.find("error")
    if err is not None:
        raise VomsClientError(err.findtext("code") or "Error", err.findtext("message") or "")
    text = root.findtext("ac")
    if resp.status_code != 200 or not text:
        raise VomsClientError("BadAnswer", f"HTTP {resp.status_code} without an AC")
    return base64.b64decode("".join(text.split()))


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
    user = load_credential(cert, key)
    der = request_ac(server.host, server.port, cert, key, ca_dir, fqans, int(hours * 3600))
    proxy = make_proxy(user, hours=hours, acs=[der])
    validator = Validator(TrustStore(ca_dir), VomsTrust(vomsdir))
    ident = validator.validate(proxy.chain_pem())
    if ident.rejected_acs or not ident.acs:
        why = ident.rejected_acs[0].message if ident.rejected_acs else "no AC"
        raise VomsClientError("UntrustedAC", f"the AC does not verify here: {why}")
    proxy.write_proxy(out)
    return ident

"""Health of the gproc services named in ``[metrics] probe``: one HTTPS GET each, in
parallel, with a bound on time. A service is up when it answers with a status below
500 (a 401/403 is a live service refusing an anonymous caller); the probe presents
the host credential when one is configured, so fronts that require a client
certificate answer too. The peer's chain is checked against the CA directory; the
host name is not (services are addressed by loopback or internal addresses)."""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    url: str
    up: bool
    status: int | None = None
    ms: float | None = None
    error: str | None = None


def probe_context(ca_dir: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if ca_dir is not None:
        ctx.load_verify_locations(capath=str(ca_dir))
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def probe(name: str, url: str, ctx: ssl.SSLContext, timeout_s: float) -> ServiceHealth:
    """One GET of ``url`` (https, or http for a service behind a TLS terminator)."""
    parts = urlsplit(url)
    started = time.perf_counter()
    try:
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("not an http(s) URL")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                parts.hostname, parts.port or 443, timeout=timeout_s, context=ctx
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", target, headers={"User-Agent": "gproc-ops-probe"})
            resp = conn.getresponse()
            resp.read(64 * 1024)
            status = resp.status
        finally:
            conn.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        ms = round((time.perf_counter() - started) * 1000, 1)
        return ServiceHealth(name, url, False, ms=ms, error=f"{type(exc).__name__}: {exc}"[:300])
    ms = round((time.perf_counter() - started) * 1000, 1)
    return ServiceHealth(name, url, status < 500, status, ms)


def probe_all(
    targets: Mapping[str, str], ctx: ssl.SSLContext, timeout_s: float
) -> list[ServiceHealth]:
    """Every target probed at once; the answer waits for the slowest (<= timeout)."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        futures = [pool.submit(probe, n, u, ctx, timeout_s) for n, u in targets.items()]
        return [f.result() for f in futures]

"""What a portal calls to show the dashboard: the summary JSON fetched with the
logged-in user's proxy (the service decides whether that user is an administrator).

``fetch_summary(url, proxy, ca_dir)``: ``url`` is the summary endpoint
(``https://HOST:PORT/ops/summary``, query parameters ``window_s``/``bucket_s``
allowed), ``proxy`` the user's proxy (a PEM file path, or the PEM bytes: certificate,
key and chain, as ``voms-proxy-init`` writes them), ``ca_dir`` the hashed CA
directory that signs the service's host certificate. Refusals raise the error
root's categories with the service's message.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gproc import errors

MAX_BYTES = 16 * 1024 * 1024


def _context(proxy: str | Path | bytes, ca_dir: str | Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(capath=str(ca_dir))
    if isinstance(proxy, bytes):  # ssl loads credentials from files only: a private one
        with tempfile.TemporaryDirectory(prefix="gproc-ops-") as tmp:
            path = Path(tmp) / "proxy.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(proxy)
            ctx.load_cert_chain(str(path))
    else:
        ctx.load_cert_chain(str(proxy))
    return ctx


def fetch_summary(
    url: str,
    proxy_pem_path_or_bytes: str | Path | bytes,
    ca_dir: str | Path,
    *,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """GET the dashboard summary as ``proxy``'s owner; the decoded JSON document."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise errors.InvalidRequest(f"not an https URL: {url[:200]!r}", field="url")
    try:
        ctx = _context(proxy_pem_path_or_bytes, ca_dir)
    except (OSError, ssl.SSLError) as exc:
        raise errors.CredentialRefused(f"cannot use the proxy: {exc}", field="proxy") from None
    conn = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout_s, context=ctx
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read(MAX_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise errors.Unavailable(f"dashboard endpoint {url[:200]} unreachable: {exc}") from None
    finally:
        conn.close()
    return _decode(resp.status, body)


def _decode(status: int, body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body) if len(body) <= MAX_BYTES else None
    except ValueError:
        doc = None
    message = doc.get("error") if isinstance(doc, dict) else None
    text = str(message or f"HTTP {status}")
    if status == 401:
        raise errors.NotAuthenticated(text)
    if status == 403:
        raise errors.NotAuthorised(text)
    if status == 400:
        raise errors.InvalidRequest(text)
    if status != 200 or not isinstance(doc, dict):
        raise errors.Unavailable(f"dashboard endpoint answered {status}: {text[:300]}")
    return doc

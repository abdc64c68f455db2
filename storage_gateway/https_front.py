"""The gateway's HTTPS front: a WSGI application over :class:`StorageGateway`.

Served by ``security.tls`` (client X.509 proxies; the validated identity arrives in
``environ["gproc.identity"]``). URL paths are logical gateway paths, decoded exactly
once (so a residual ``%2e``/``%2F`` is refused by path validation, never decoded
again). Operations, in the style of dCache/xrootd HTTP doors:

* ``GET file`` (``Range: bytes=a-b``, ``a-`` or ``-n``; 206 + Content-Range),
  ``GET directory`` → JSON listing;
* ``HEAD`` → size, and ``Digest: adler32=<hex>,sha-256=<base64>`` (RFC 3230/5843) for
  files; ``GET ?op=stat`` gives the same as JSON (hex digests);
* ``PUT`` (Content-Length or chunked) streamed to an atomic upload: written aside,
  size and optional ``Digest`` request header verified, then renamed; ``?overwrite=1``
  replaces; a short or broken body leaves nothing behind;
* ``DELETE``; ``MKCOL`` or ``POST ?op=mkdir`` (``&parents=1``);
  ``POST ?op=rename&to=/new/path``;
* ``/sshkeys``: ``POST`` an OpenSSH public-key line, ``GET`` the caller's keys,
  ``DELETE /sshkeys?fingerprint=SHA256:...`` (used by the SFTP front).

Errors are JSON ``{"error": <type>, "message": ...}`` with a 4xx/5xx status per
:data:`STATUS`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from gproc.security.identity import Identity
from gproc.security.wsgi_auth import ENV_IDENTITY, ENV_PEER_CHAIN
from gproc.storage_gateway.backends.base import (
    CHUNK,
    AlreadyExists,
    BackendUnavailable,
    ChecksumMismatch,
    Checksums,
    Conflict,
    Entry,
    InvalidPath,
    InvalidRange,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageError,
)
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.sshkeys import KeyConflict, KeyError_, SshKeyStore

log = logging.getLogger("gproc.gateway.https")
KEYS_PATH = "/sshkeys"
MAX_KEY_BODY = 16 * 1024

STATUS: dict[type[StorageError], str] = {
    InvalidPath: "400 Bad Request",
    PermissionDenied: "403 Forbidden",
    NotFound: "404 Not Found",
    AlreadyExists: "409 Conflict",
    Conflict: "409 Conflict",
    InvalidRange: "416 Range Not Satisfiable",
    ChecksumMismatch: "422 Unprocessable Content",
    BackendUnavailable: "503 Service Unavailable",
    QuotaExceeded: "507 Insufficient Storage",
}


class HttpError(Exception):
    """A protocol-level error (bad header, missing length...) with its status."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyTruncated(ConnectionError):
    """The client sent less than its Content-Length (it went away mid-upload)."""


StartResponse = Callable[..., Any]
Admission = Callable[[Identity], "str | None"]


class GatewayApp:
    """WSGI app; thread-safe (no per-request state on the instance)."""

    def __init__(
        self,
        gateway: StorageGateway,
        keys: SshKeyStore | None = None,
        admit: Admission | None = None,
    ) -> None:
        """``admit`` returns why a validated identity must still be refused (e.g. a VO
        member suspended since their AC was issued), or None."""
        self.gateway = gateway
        self.keys = keys
        self.admit = admit

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        identity: Identity | None = environ.get(ENV_IDENTITY)
        if identity is None:
            return _json(
                start_response,
                "401 Unauthorized",
                {"error": "NotAuthenticated", "message": "no valid client proxy"},
            )
        refusal = self.admit(identity) if self.admit else None
        if refusal is not None:
            return _json(
                start_response, "403 Forbidden", {"error": "NotAuthorised", "message": refusal}
            )
        try:
            path = _logical_path(environ)
            query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            if path == KEYS_PATH:
                return self._sshkeys(environ, start_response, identity, query)
            return self._dispatch(environ, start_response, identity, path, query)
        except StorageError as exc:
            return _error(start_response, _status_of(exc), type(exc).__name__, str(exc))
        except HttpError as exc:
            return _error(start_response, exc.status, "BadRequest", str(exc))
        except BodyTruncated as exc:
            return _error(start_response, "400 Bad Request", "UploadInterrupted", str(exc))

    # -- data operations ---------------------------------------------------------
    def _dispatch(
        self,
        env: dict[str, Any],
        sr: StartResponse,
        who: Identity,
        path: str,
        query: dict[str, list[str]],
    ) -> Iterable[bytes]:
        method = env.get("REQUEST_METHOD", "GET")
        op = _one(query, "op")
        if method in ("GET", "HEAD") and op == "stat":
            return self._stat_json(sr, who, path)
        if method == "GET":
            return self._get(env, sr, who, path)
        if method == "HEAD":
            return self._head(sr, who, path)
        if method == "PUT":
            return self._put(env, sr, who, path, _flag(query, "overwrite"))
        if method == "DELETE":
            self.gateway.delete(who, path)
            return _json(sr, "200 OK", {"deleted": path})
        if method == "MKCOL" or (method == "POST" and op == "mkdir"):
            self.gateway.mkdir(who, path, parents=_flag(query, "parents"))
            return _json(sr, "201 Created", {"created": path})
        if method == "POST" and op == "rename":
            target = _one(query, "to")
            if not target:
                raise HttpError("400 Bad Request", "rename needs ?to=<new path>")
            self.gateway.rename(who, path, target)
            return _json(sr, "200 OK", {"renamed": path, "to": target})
        raise HttpError("405 Method Not Allowed", f"{method} {op or ''} is not supported here")

    def _get(
        self, env: dict[str, Any], sr: StartResponse, who: Identity, path: str
    ) -> Iterable[bytes]:
        entry = self.gateway.stat(who, path)
        if entry.is_dir:
            entries = self.gateway.listdir(who, path)
            return _json(sr, "200 OK", {"path": path, "entries": [_entry(e) for e in entries]})
        try:
            rng = parse_range(env.get("HTTP_RANGE"), entry.size)
        except InvalidRange as exc:  # RFC 9110 15.5.17: say how long the file is
            extra = [("Content-Range", f"bytes */{entry.size}")]
            return _error(sr, _status_of(exc), type(exc).__name__, str(exc), extra)
        if rng is None:
            body = self.gateway.open_read(who, path)
            sr(
                "200 OK",
                [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", str(entry.size)),
                    ("Accept-Ranges", "bytes"),
                ],
            )
            return _closing(body)
        start, length = rng
        body = self.gateway.open_read(who, path, start, length)
        sr(
            "206 Partial Content",
            [
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", str(length)),
                ("Content-Range", f"bytes {start}-{start + length - 1}/{entry.size}"),
                ("Accept-Ranges", "bytes"),
            ],
        )
        return _closing(body)

    def _head(self, sr: StartResponse, who: Identity, path: str) -> Iterable[bytes]:
        entry = self.gateway.stat(who, path)
        headers = [("X-Gproc-Type", "directory" if entry.is_dir else "file")]
        if not entry.is_dir:
            sums = self.gateway.checksum(who, path)
            headers += [
                ("Content-Length", str(entry.size)),
                ("Accept-Ranges", "bytes"),
                ("Digest", digest_header(sums)),
                ("Content-Type", "application/octet-stream"),
            ]
        else:
            headers += [("Content-Length", "0"), ("Content-Type", "application/json")]
        sr("200 OK", headers)
        return []

    def _stat_json(self, sr: StartResponse, who: Identity, path: str) -> Iterable[bytes]:
        entry = self.gateway.stat(who, path)
        out = _entry(entry)
        out["path"] = path
        if not entry.is_dir:
            sums = self.gateway.checksum(who, path)
            out.update(adler32=sums.adler32, sha256=sums.sha256)
        return _json(sr, "200 OK", out)

    def _put(
        self, env: dict[str, Any], sr: StartResponse, who: Identity, path: str, overwrite: bool
    ) -> Iterable[bytes]:
        expected = parse_digest(env.get("HTTP_DIGEST"))
        chunks = request_body(env)
        sums = self.gateway.write(who, path, chunks, overwrite=overwrite, expected=expected)
        return _json(
            sr,
            "201 Created",
            {"path": path, "adler32": sums.adler32, "sha256": sums.sha256},
            [("Digest", digest_header(sums))],
        )

    # -- ssh keys --------------------------------------------------------------------
    def _sshkeys(
        self, env: dict[str, Any], sr: StartResponse, who: Identity, query: dict[str, list[str]]
    ) -> Iterable[bytes]:
        if self.keys is None:
            raise HttpError("404 Not Found", "SSH key registration is not enabled here")
        method = env.get("REQUEST_METHOD", "GET")
        if method == "GET":
            return _json(sr, "200 OK", {"keys": [k.public() for k in self.keys.list_for(who)]})
        if method == "POST":
            line = b"".join(request_body(env, MAX_KEY_BODY)).decode("utf-8", "replace")
            try:
                rec = self.keys.register(who, env.get(ENV_PEER_CHAIN) or (), line)
            except KeyConflict as exc:
                raise HttpError("409 Conflict", str(exc)) from None
            except KeyError_ as exc:
                raise HttpError("400 Bad Request", str(exc)) from None
            return _json(sr, "201 Created", rec.public())
        if method == "DELETE":
            fp = _one(query, "fingerprint") or ""
            if not self.keys.remove(who, fp):
                raise NotFound(f"no key {fp!r} registered by you")
            return _json(sr, "200 OK", {"deleted": fp})
        raise HttpError("405 Method Not Allowed", f"{method} is not supported on /sshkeys")


# -- request parsing ----------------------------------------------------------------
def _logical_path(env: dict[str, Any]) -> str:
    """PATH_INFO as the UTF-8 text the client sent (WSGI hands it over as latin-1)."""
    raw = env.get("PATH_INFO", "") or "/"
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise InvalidPath("the URL path is not valid UTF-8") from None


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return (_one(query, key) or "").lower() in ("1", "true", "yes")


_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, length) of a single ``bytes=`` range; None serves the whole file.

    Multiple ranges and other units are ignored (the whole file is sent, which
    RFC 9110 allows); a malformed or unsatisfiable range raises InvalidRange."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.match(spec)
    if match is None or not (match.group(1) or match.group(2)):
        raise InvalidRange(f"malformed Range header {header!r}")
    first, last = match.groups()
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise InvalidRange("empty suffix range")
        return max(0, size - n), min(n, size)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise InvalidRange(f"range {spec.strip()} is outside the file ({size} bytes)")
    return start, min(end, size - 1) - start + 1


def parse_digest(header: str | None) -> Checksums | None:
    """Checksums announced in a ``Digest`` request header (adler32 hex, sha-256 base64)."""
    if not header:
        return None
    adler = sha = ""
    for item in header.split(","):
        algo, _, value = item.strip().partition("=")
        algo = algo.strip().lower()
        if algo == "adler32":
            adler = value.strip().lower()
            if len(adler) != 8 or any(c not in "0123456789abcdef" for c in adler):
                raise HttpError("400 Bad Request", "adler32 digest must be 8 hex digits")
        elif algo == "sha-256":
            try:
                sha = base64.b64decode(value.strip(), validate=True).hex()
            except (binascii.Error, ValueError):
                raise HttpError("400 Bad Request", "sha-256 digest must be base64") from None
    return Checksums(adler, sha) if (adler or sha) else None


def digest_header(sums: Checksums) -> str:
    sha_b64 = base64.b64encode(bytes.fromhex(sums.sha256)).decode()
    return f"adler32={sums.adler32},sha-256={sha_b64}"


def request_body(env: dict[str, Any], limit: int | None = None) -> Iterator[bytes]:
    """The request body in chunks; raises BodyTruncated when it ends early."""
    stream = env["wsgi.input"]
    chunked = "chunked" in env.get("HTTP_TRANSFER_ENCODING", "").lower()
    length_text = env.get("CONTENT_LENGTH") or ""
    if not chunked and not length_text.isdigit():
        raise HttpError("411 Length Required", "send Content-Length or a chunked body")
    remaining = None if chunked else int(length_text)
    if limit is not None and remaining is not None and remaining > limit:
        raise HttpError("413 Content Too Large", f"body over {limit} bytes")
    return _body_chunks(stream, remaining, limit)


def _body_chunks(stream: Any, remaining: int | None, limit: int | None) -> Iterator[bytes]:
    seen = 0
    while remaining is None or remaining > 0:
        want = CHUNK if remaining is None else min(CHUNK, remaining)
        try:
            data = stream.read(want)
        except (OSError, ValueError) as exc:  # cheroot: broken chunked framing, reset
            raise BodyTruncated(f"upload interrupted: {exc}") from None
        if not data:
            if remaining is None:
                return
            raise BodyTruncated(f"upload interrupted: {remaining} bytes missing")
        seen += len(data)
        if limit is not None and seen > limit:
            raise HttpError("413 Content Too Large", f"body over {limit} bytes")
        if remaining is not None:
            remaining -= len(data)
        yield data


# -- responses -----------------------------------------------------------------------
def _status_of(exc: StorageError) -> str:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return "500 Internal Server Error"


def _entry(e: Entry) -> dict[str, Any]:
    return {
        "name": e.name,
        "type": "directory" if e.is_dir else "file",
        "size": e.size,
        "mtime": e.mtime,
    }


def _json(
    sr: StartResponse, status: str, data: dict[str, Any], extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = json.dumps(data).encode()
    sr(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(extra or [])],
    )
    return [body]


def _error(
    sr: StartResponse,
    status: str,
    kind: str,
    message: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    log.info("refused: %s %s", status, message)
    return _json(sr, status, {"error": kind, "message": message}, extra)


class _closing:  # noqa: N801 - WSGI iterable wrapper, used like a function
    """A WSGI body that closes the backend stream when the server closes it (client
    gone mid-download: the file handle is released, the worker thread is freed)."""

    def __init__(self, body: Iterator[bytes]) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        return self.body

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()

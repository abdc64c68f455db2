"""WSGI middleware that turns the client's certificate chain into a validated Identity.

The chain comes from the TLS connection (put into the environ by security.tls) or,
only for connections from configured reverse-proxy addresses, from a header holding
the URL-encoded PEM chain (nginx: ``proxy_set_header X-SSL-Client-Chain
$ssl_client_escaped_cert``, extended to the whole chain). Identity never comes from
the request body. The application reads ``environ["gproc.identity"]``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote

from cryptography import x509

from gproc.security.errors import CredentialError
from gproc.security.identity import Identity

log = logging.getLogger(__name__)

ENV_IDENTITY = "gproc.identity"  # Identity | None
ENV_AUTH_ERROR = "gproc.auth_error"  # why there is no identity (str), or None
ENV_PEER_CHAIN = "gproc.peer_chain"  # tuple[x509.Certificate, ...] from the TLS layer
ENV_IDENTITY_SOURCE = "gproc.identity_source"  # "tls" | "proxy-header" | None
DEFAULT_CHAIN_HEADER = "X-SSL-Client-Chain"
MAX_HEADER_CHAIN = 64 * 1024


class ChainValidator(Protocol):
    """What security.chain.Validator offers: chain (leaf first) -> Identity, raising
    CredentialError on refusal. It caches per chain and trust-store generation."""

    def validate(self, chain: Sequence[x509.Certificate]) -> Identity: ...


Validator = ChainValidator | Callable[[Sequence[x509.Certificate]], Identity]


def validate_with(validator: Validator, chain: Sequence[x509.Certificate]) -> Identity:
    """Call either form of validator."""
    if callable(validator):
        return validator(chain)
    return validator.validate(chain)


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def parse_trusted(
    addresses: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse proxy addresses/networks ("127.0.0.1", "10.0.0.0/8"); bad ones raise."""
    return tuple(ipaddress.ip_network(a.strip(), strict=False) for a in addresses)


def chain_from_header(value: str) -> tuple[x509.Certificate, ...]:
    """Decode a URL-encoded PEM chain (leaf first), or comma-separated base64 DER
    (HAProxy, which has no PEM converter: ``%[ssl_c_der,base64],%[ssl_c_chain_der,
    base64]``, the leaf then the certificates the client sent with it, each part
    DER certificates end to end); ValueError when unusable."""
    if len(value) > MAX_HEADER_CHAIN:
        raise ValueError("client chain header too large")
    text = unquote(value)
    if "-----BEGIN" in text:
        certs = tuple(x509.load_pem_x509_certificates(text.encode("ascii", "strict")))
    else:
        certs = tuple(c for part in text.split(",") if part.strip() for c in _der_certs(part))
    if not certs:
        raise ValueError("client chain header holds no certificate")
    return certs


def _der_certs(b64: str) -> list[x509.Certificate]:
    """DER certificates end to end (base64): split by each SEQUENCE's length."""
    try:
        der = base64.b64decode(b64.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from exc
    out: list[x509.Certificate] = []
    while der:
        if der[0] != 0x30 or len(der) < 2:
            raise ValueError("not a DER certificate sequence")
        n = der[1]
        head, size = (
            (2, n) if n < 0x80 else (2 + (n & 0x7F), int.from_bytes(der[2 : 2 + (n & 0x7F)]))
        )
        if n == 0x80 or n & 0x7F > 4 or head + size > len(der):
            raise ValueError("bad DER length")
        out.append(x509.load_der_x509_certificate(der[: head + size]))
        der = der[head + size :]
    return out


class IdentityMiddleware:
    """Validates the caller's chain and exposes the Identity to the wrapped app.

    With ``require=True`` requests without a valid identity get 403 and never reach
    the app; with ``require=False`` the app sees ``gproc.identity = None`` and the
    reason in ``gproc.auth_error`` (e.g. to answer with a SOAP fault)."""

    def __init__(
        self,
        app: WSGIApp,
        validator: Validator,
        *,
        trusted_proxies: Iterable[str] = (),
        header: str = DEFAULT_CHAIN_HEADER,
        require: bool = True,
    ) -> None:
        self.app = app
        self.validator = validator
        self.trusted = parse_trusted(trusted_proxies)
        self.header_key = _environ_key(header)
        self.require = require

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        identity, source, error = self._identify(environ)
        environ[ENV_IDENTITY] = identity
        environ[ENV_IDENTITY_SOURCE] = source if identity else None
        environ[ENV_AUTH_ERROR] = error
        if identity is None and self.require:
            body = f"403 Forbidden: {error}\n".encode()
            start_response(
                "403 Forbidden",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.app(environ, start_response)

    def _identify(self, environ: dict[str, Any]) -> tuple[Identity | None, str, str | None]:
        """(identity, source, error); the forwarded header is removed in every case."""
        forwarded = environ.pop(self.header_key, None)
        remote = environ.get("REMOTE_ADDR", "")
        if forwarded is not None and self._is_trusted(remote):
            try:
                chain = chain_from_header(forwarded)
            except ValueError as exc:
                return None, "proxy-header", f"bad forwarded client chain: {exc}"
            return self._validate(chain, "proxy-header")
        if forwarded is not None:
            log.warning("ignored client-chain header from untrusted address %s", remote)
        chain = environ.get(ENV_PEER_CHAIN) or ()
        if not chain:
            return None, "tls", "no client certificate"
        return self._validate(chain, "tls")

    def _validate(
        self, chain: Sequence[x509.Certificate], source: str
    ) -> tuple[Identity | None, str, str | None]:
        try:
            identity = validate_with(self.validator, chain)
        except CredentialError as exc:
            return None, source, f"credential refused: {exc}"
        return identity, source, None

    def _is_trusted(self, remote: str) -> bool:
        try:
            addr = ipaddress.ip_address(remote)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)

"""Cheap splitting of a credential chain into certificate DERs.

Done without building certificate objects so the cache key (SHA-256 of the chain DER)
costs microseconds; private-key blocks in proxy files are skipped, never kept."""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gproc.security.errors import MalformedCredential, Reason, UntrustedCredential

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----")
_BEGIN_CERT = b"-----BEGIN CERTIFICATE-----"


def split_chain(chain: bytes | str | Sequence[x509.Certificate], max_length: int) -> list[bytes]:
    """Certificate DERs of `chain` (PEM, concatenated DER, or certificate objects)."""
    if isinstance(chain, str):
        chain = chain.encode("ascii", "replace")
    if isinstance(chain, bytes | bytearray | memoryview):
        data = bytes(chain)
        ders = _split_pem(data) if b"-----BEGIN" in data else _split_der(data)
    else:
        ders = [c.public_bytes(Encoding.DER) for c in chain]
    if not ders:
        raise MalformedCredential(Reason.EMPTY_CHAIN, "no certificate found in the credential")
    if len(ders) > max_length:
        raise UntrustedCredential(
            Reason.CHAIN_TOO_LONG,
            f"chain of {len(ders)} certificates exceeds the limit of {max_length}",
        )
    return ders


def _split_pem(data: bytes) -> list[bytes]:
    blocks = _PEM_CERT.findall(data)
    if len(blocks) != data.count(_BEGIN_CERT):
        raise MalformedCredential(Reason.MALFORMED, "truncated or corrupt PEM certificate block")
    try:
        return [binascii.a2b_base64(b"".join(b.split())) for b in blocks]
    except binascii.Error as exc:
        raise MalformedCredential(Reason.MALFORMED, f"bad base64 in PEM: {exc}") from exc


def _split_der(data: bytes) -> list[bytes]:
    """Concatenated DER certificates (each an outer SEQUENCE)."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = pos + _der_length(data, pos)
        if end > len(data):
            raise MalformedCredential(
                Reason.MALFORMED,
                f"truncated DER: certificate #{len(out)} needs "
                f"{end - pos} bytes, {len(data) - pos} left",
            )
        out.append(data[pos:end])
        pos = end
    return out


def _der_length(data: bytes, pos: int) -> int:
    """Total length (header + content) of the DER SEQUENCE at `pos`."""
    if data[pos] != 0x30 or pos + 2 > len(data):
        raise MalformedCredential(Reason.MALFORMED, "not a PEM or DER certificate chain")
    first = data[pos + 1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or pos + 2 + n > len(data):
        raise MalformedCredential(Reason.MALFORMED, "bad DER length")
    return 2 + n + int.from_bytes(data[pos + 2 : pos + 2 + n], "big")

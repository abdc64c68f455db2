"""A MyProxy client (protocol version 2 over TLS): logon and renewal.

What ``myproxy-logon`` does, measured against Debian's ``myproxy-server`` 6.2:

1. TLS to the server; its chain must validate against the grid CA directory and its
   identity must be the expected one (``server_dn``, else the host name in the
   certificate's SANs or CN, as the stock client checks it); then one byte ``0``
   (the GSI "no delegation" flag).
2. A request of ``KEY=value`` lines ending in a NUL: ``VERSION=MYPROXYv2``,
   ``COMMAND=0`` (get a proxy), ``USERNAME``, ``PASSPHRASE``, ``LIFETIME`` (seconds).
3. The answer: ``RESPONSE=0`` (go on), ``1`` (refused, ``ERROR=`` lines) or ``2``
   (authorise first: ``AUTHORIZATION_DATA=<method>:<challenge>``). Renewal answers
   the ``X509_certificate`` challenge: method 2 (4 bytes), the SHA-1 RSA signature of
   the challenge with the key of the user's current proxy (length-prefixed), and that
   proxy's chain (a count byte and DER certificates).
4. A DER certificate request for a key made here; the server answers with a count
   byte and the DER certificates (the new proxy first), then a final response.

The private key never leaves this process; the result is a proxy file (certificate,
key, chain) as the rest of gproc reads it. Passphrases and proxies are never logged
nor put into an error message.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from gproc import errors
from gproc.security.credentials import KEY_SIZE, Credential, new_key
from gproc.security.identity import grid_dn, same_dn

__all__ = [
    "DEFAULT_PORT",
    "MyProxyRefused",
    "MyProxyServer",
    "MyProxyUnavailable",
    "logon",
    "renew",
]

DEFAULT_PORT = 7512
VERSION = "MYPROXYv2"
MAX_MESSAGE = 1 << 20  # bytes: any answer longer than this is not MyProxy's
MIN_PASSPHRASE = 6  # the server refuses shorter ones (MIN_PASS_PHRASE_LEN)
_USERNAME_BAD = ("\n", "\r", "\0")
_AUTH_CERT = 2  # AUTHORIZETYPE_CERT


class MyProxyRefused(errors.CredentialRefused):
    """The MyProxy server refused the request: wrong username or passphrase, no such
    credential, or a renewer it does not accept. ``rule`` says which step."""

    code = "Client.MyProxyRefused"


class MyProxyUnavailable(errors.Unavailable):
    """The MyProxy server could not be reached, timed out, or is not the server
    expected (untrusted certificate, other identity, not speaking MyProxy)."""

    code = "Server.MyProxyUnavailable"


@dataclass(frozen=True)
class MyProxyServer:
    """Where the credential store is and how it is recognised.

    ``ca_dir`` is the grid CA directory the server's chain must lead to;
    ``server_dn`` the DN its certificate must carry (None: the certificate must name
    ``host``, in a SAN or as ``CN=<host>`` / ``CN=host/<host>``)."""

    host: str
    ca_dir: Path
    port: int = DEFAULT_PORT
    server_dn: str | None = None
    timeout_s: float = 20.0

    @property
    def where(self) -> str:
        return f"MyProxy server {self.host}:{self.port}"


def logon(
    server: MyProxyServer,
    username: str,
    passphrase: str,
    lifetime_s: int,
    *,
    key_bits: int = KEY_SIZE,
) -> bytes:
    """A proxy of the credential stored as ``username``, valid ``lifetime_s`` (the
    server may cap it), as a PEM proxy file: certificate, key, chain."""
    _check_username(username)
    if len(passphrase) < MIN_PASSPHRASE or any(c in passphrase for c in _USERNAME_BAD):
        raise MyProxyRefused(
            f"the passphrase must have at least {MIN_PASSPHRASE} characters and no line breaks",
            field="passphrase",
            rule="passphrase",
        )
    request = _request(username, lifetime_s, passphrase=passphrase)
    with _Session(server, None) as session:
        session.send(request)
        answer = session.answer()
        if answer.kind == 2:  # the server wants more than the passphrase: not ours
            raise MyProxyRefused(
                f"{server.where} asks for an authorisation method other than the passphrase",
                rule="logon",
            )
        return session.get_proxy(key_bits)


def renew(
    server: MyProxyServer,
    current_proxy_pem: bytes,
    username: str,
    lifetime_s: int,
    *,
    client_cert: Path,
    client_key: Path,
    key_bits: int = KEY_SIZE,
) -> bytes:
    """A fresh proxy of ``username``'s stored credential for a service that holds a
    still valid proxy of the same user (``current_proxy_pem``: certificate, key,
    chain). The service authenticates with its own credential (``client_cert`` /
    ``client_key``, e.g. the host certificate); the credential must name it as a
    renewer. Same result as :func:`logon`."""
    _check_username(username)
    proxy = _proxy_credential(current_proxy_pem)
    request = _request(username, lifetime_s, passphrase="")
    with _Session(server, (client_cert, client_key)) as session:
        session.send(request)
        answer = session.answer()
        rounds = 0
        while answer.kind == 2:
            rounds += 1
            if rounds > 2:
                raise MyProxyUnavailable(f"{server.where} keeps asking for authorisation")
            session.send(_cert_authorisation(answer, proxy, server))
            answer = session.answer()
        return session.get_proxy(key_bits)


# ---- the protocol ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Answer:
    kind: int  # RESPONSE=
    fields: tuple[tuple[str, str], ...]

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.fields if k == key]


def _check_username(username: str) -> None:
    if not username or len(username) > 1024 or any(c in username for c in _USERNAME_BAD):
        raise MyProxyRefused(
            "the MyProxy username must be 1-1024 characters without line breaks",
            field="username",
            rule="username",
        )


def _request(username: str, lifetime_s: int, *, passphrase: str) -> bytes:
    if lifetime_s < 60:
        raise errors.InvalidRequest("a proxy lifetime is at least 60 s", field="lifetime_s")
    lines = [
        f"VERSION={VERSION}",
        "COMMAND=0",
        f"USERNAME={username}",
        f"PASSPHRASE={passphrase}",
        f"LIFETIME={int(lifetime_s)}",
    ]
    return ("\n".join(lines) + "\n").encode() + b"\0"


def _parse_answer(raw: bytes, where: str) -> _Answer:
    try:
        text = raw.rstrip(b"\0").decode()
    except UnicodeDecodeError:
        raise MyProxyUnavailable(f"{where} answered something that is not MyProxy") from None
    fields = tuple(
        (k, v) for k, sep, v in (line.partition("=") for line in text.splitlines()) if sep
    )
    answer = _Answer(-1, fields)
    if answer.values("VERSION") != [VERSION] or len(answer.values("RESPONSE")) != 1:
        raise MyProxyUnavailable(f"{where} does not speak {VERSION}")
    kind = answer.values("RESPONSE")[0]
    if kind not in ("0", "1", "2"):
        raise MyProxyUnavailable(f"{where} answered RESPONSE={kind[:20]}")
    answer = _Answer(int(kind), fields)
    if answer.kind == 1:
        message = " ".join(m.strip() for m in answer.values("ERROR") if m.strip())
        raise MyProxyRefused(f"{where} refused: {message or 'no reason given'}", rule="myproxy")
    return answer


def _cert_authorisation(answer: _Answer, proxy: Credential, server: MyProxyServer) -> bytes:
    """The answer to an ``X509_certificate`` challenge: prove we hold the proxy."""
    challenges = [
        data
        for method, sep, data in (v.partition(":") for v in answer.values("AUTHORIZATION_DATA"))
        if sep and method == "X509_certificate"
    ]
    if not challenges:
        raise MyProxyRefused(
            f"{server.where} does not offer renewal by certificate for this credential",
            rule="renewal",
        )
    signature = proxy.key.sign(challenges[0].encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - the protocol's
    chain = _chain_buffer((proxy.cert, *proxy.chain))
    return struct.pack("<I", _AUTH_CERT) + struct.pack(">I", len(signature)) + signature + chain


def _chain_buffer(certs: Sequence[x509.Certificate]) -> bytes:
    if not 0 < len(certs) < 256:
        raise errors.InvalidRequest("a proxy chain has 1 to 255 certificates", field="proxy")
    der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)
    return bytes([len(certs)]) + der


def _proxy_credential(pem: bytes) -> Credential:
    """The current proxy (certificate, key, chain) the renewal is authorised with."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise errors.CredentialRefused(
            "the current proxy is not a PEM proxy file (certificate, key, chain)", field="proxy"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or _spki(key.public_key()) != _spki(
        certs[0].public_key()
    ):
        raise errors.CredentialRefused(
            "the current proxy's key is not the RSA key of its certificate", field="proxy"
        )
    return Credential(certs[0], key, tuple(certs[1:]))


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class _Session:
    """One TLS connection to the server, with a deadline for the whole exchange."""

    def __init__(self, server: MyProxyServer, client: tuple[Path, Path] | None) -> None:
        self.server = server
        self.client = client
        self.deadline = time.monotonic() + server.timeout_s
        self.sock: ssl.SSLSocket | None = None
        self.buffer = b""

    def __enter__(self) -> _Session:
        ctx = _context(self.server, self.client)
        where = self.server.where
        try:
            raw = socket.create_connection(
                (self.server.host, self.server.port), timeout=self.server.timeout_s
            )
        except OSError as exc:
            raise MyProxyUnavailable(f"{where}: cannot connect: {_os_reason(exc)}") from None
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=_sni(self.server.host))
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise MyProxyUnavailable(
                f"{where}: certificate not trusted by {self.server.ca_dir}: {exc.verify_message}"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raw.close()
            raise MyProxyUnavailable(f"{where}: TLS failed: {_os_reason(exc)}") from None
        try:
            _check_identity(self.sock, self.server)
            self._write(b"0")
        except BaseException:
            self.sock.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock is not None:
            self.sock.close()

    def send(self, data: bytes) -> None:
        self._write(data)

    def answer(self) -> _Answer:
        """The next NUL-terminated text response."""
        while b"\0" not in self.buffer.lstrip(b"\0"):
            self._fill()
        self.buffer = self.buffer.lstrip(b"\0")  # the server's reply to the GSI flag byte
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return _parse_answer(raw, self.server.where)

    def get_proxy(self, key_bits: int) -> bytes:
        """Send a certificate request, read the chain and the final response."""
        key = new_key(key_bits)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")]))
            .sign(key, hashes.SHA256())
        )
        self._write(csr.public_bytes(serialization.Encoding.DER))
        certs = self._read_certs()
        self.answer()  # the server's last word: RESPONSE=0, or a refusal raised here
        if _spki(certs[0].public_key()) != _spki(key.public_key()):
            raise MyProxyUnavailable(f"{self.server.where} sent a proxy for another key")
        pem = serialization.Encoding.PEM
        key_pem = key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        return (
            certs[0].public_bytes(pem) + key_pem + b"".join(c.public_bytes(pem) for c in certs[1:])
        )

    def _read_certs(self) -> list[x509.Certificate]:
        while not self.buffer:
            self._fill()
        count, self.buffer = self.buffer[0], self.buffer[1:]
        if count == 0:
            raise MyProxyUnavailable(f"{self.server.where} sent no certificate")
        certs = []
        for _ in range(count):
            size = self._der_size()
            while len(self.buffer) < size:
                self._fill()
            der, self.buffer = self.buffer[:size], self.buffer[size:]
            try:
                certs.append(x509.load_der_x509_certificate(der))
            except ValueError:
                raise MyProxyUnavailable(f"{self.server.where} sent a broken certificate") from None
        return certs

    def _der_size(self) -> int:
        """Total length of the DER SEQUENCE at the start of the buffer."""
        while len(self.buffer) < 2:
            self._fill()
        if self.buffer[0] != 0x30:
            raise MyProxyUnavailable(f"{self.server.where} sent something not DER")
        first = self.buffer[1]
        if first < 0x80:
            return 2 + first
        n = first & 0x7F
        if not 0 < n <= 4:
            raise MyProxyUnavailable(f"{self.server.where} sent a bad DER length")
        while len(self.buffer) < 2 + n:
            self._fill()
        return 2 + n + int.from_bytes(self.buffer[2 : 2 + n], "big")

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise MyProxyUnavailable(f"{self.server.where}: no answer in {self.server.timeout_s} s")
        return left

    def _write(self, data: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.settimeout(self._remaining())
            self.sock.sendall(data)
        except TimeoutError:
            raise MyProxyUnavailable(
                f"{self.server.where}: no answer in {self.server.timeout_s} s"
            ) from None
        except OSError as exc:
            raise MyProxyUnavailable(f"{self.server.where}: {_os_reason(exc)}") from None

    def _fill(self) -> None:
        assert self.sock is not None
        try:
            self.sock.settimeout(self._remaining())
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise MyProxyUnavailable(
                f"{self.server.where}: no answer in {self.server.timeout_s} s"
            ) from None
        except OSError as exc:
            raise MyProxyUnavailable(f"{self.server.where}: {_os_reason(exc)}") from None
        if not chunk:
            raise MyProxyUnavailable(f"{self.server.where} closed the connection")
        self.buffer += chunk
        if len(self.buffer) > MAX_MESSAGE:
            raise MyProxyUnavailable(f"{self.server.where} sent more than {MAX_MESSAGE} bytes")


def _context(server: MyProxyServer, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    """Chain checked against the CA directory; the identity is checked afterwards
    (:func:`_check_identity`), as grid host certificates may lack SANs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(capath=str(server.ca_dir))
    except (OSError, ssl.SSLError) as exc:
        raise MyProxyUnavailable(
            f"cannot use the CA directory {server.ca_dir}: {_os_reason(exc)}"
        ) from None
    if client is not None:
        try:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        except (OSError, ssl.SSLError) as exc:
            raise errors.CredentialRefused(
                f"cannot use the service credential {client[0]}: {_os_reason(exc)}",
                field="client_cert",
            ) from None
    return ctx


def _check_identity(sock: ssl.SSLSocket, server: MyProxyServer) -> None:
    der = sock.getpeercert(binary_form=True)
    if not der:
        raise MyProxyUnavailable(f"{server.where} presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    dn = grid_dn(cert.subject)
    if server.server_dn is not None:
        if not same_dn(dn, server.server_dn):
            raise MyProxyUnavailable(
                f"{server.where} presented {dn}, not the expected {server.server_dn}"
            )
        return
    if server.host.lower() not in _cert_names(cert):
        raise MyProxyUnavailable(
            f"{server.where} presented {dn}, which does not name {server.host} "
            "(set the server DN to accept it)"
        )


def _cert_names(cert: x509.Certificate) -> set[str]:
    names: set[str] = set()
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(n.lower() for n in sans.get_values_for_type(x509.DNSName))
        names.update(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        cn = str(attr.value).lower()
        names.add(cn.split("/", 1)[1] if cn.startswith(("host/", "myproxy/")) else cn)
    return names


def _sni(host: str) -> str | None:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return host
    return None  # no SNI for an address


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__

"""The portal's clients of gproc's public APIs, acting with the signed-in user's proxy.

Every call goes over HTTPS with the user's proxy chain as the TLS client
certificate, exactly as any external portal would: zeep for the processing,
workflow and catalogue SOAP services, plain HTTPS for the data gateway, the STAC
quicklooks and the dashboard JSON. The proxy is handed to OpenSSL through a file
that exists only while the SSL context loads it (a private directory, mode 0600).

Each WSDL is read and parsed once per process; a call binds the parsed service to
a transport carrying the caller's context, so users never share a connection.
"""

from __future__ import annotations

import copy
import os
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import zeep
from requests.adapters import HTTPAdapter
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault
from zeep.transports import Transport

from gproc.errors import GprocError, Unavailable

TIMEOUT_S = 60


class ServiceRefused(GprocError):
    """A service answered with a fault: its code, message and field, for the page."""

    code = "Client.ServiceRefused"

    def __init__(self, message: str, *, field: str | None = None, service_code: str = "") -> None:
        super().__init__(message, field=field)
        self.service_code = service_code or self.code


class ServiceDown(Unavailable):
    """A service could not be reached (connection refused, TLS failure, timeout)."""

    code = "Server.ServiceUnavailable"


@dataclass(frozen=True)
class Endpoints:
    processing: str
    workflow: str
    catalogue: str
    gateway: str
    stac: str | None = None
    ops: str | None = None


class _ContextAdapter(HTTPAdapter):
    """An adapter whose connections use one prepared SSL context (the user's chain)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def user_context(proxy_pem: bytes, ca_file: Path | None, ca_dir: Path | None) -> ssl.SSLContext:
    """A client context presenting ``proxy_pem`` (cert, key, chain) and trusting the CA."""
    ctx = ssl.create_default_context(
        cafile=str(ca_file) if ca_file else None, capath=str(ca_dir) if ca_dir else None
    )
    folder = tempfile.mkdtemp(prefix="gproc-portal-")  # mode 0700
    path = os.path.join(folder, "proxy.pem")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(proxy_pem)
        ctx.load_cert_chain(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(folder)
    return ctx


def http_session(context: ssl.SSLContext, ca_file: Path | None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # never a proxy server or bundle named in the environment
    s.verify = str(ca_file) if ca_file else True
    s.mount("https://", _ContextAdapter(context))
    return s


def fault_info(fault: Fault) -> tuple[str, str, str | None]:
    """(code, message, field) of a gproc SOAP fault (its detail element)."""
    code = str(fault.code or "").split(":")[-1]
    message, field = str(fault.message or ""), None
    detail = fault.detail
    if detail is not None and len(detail):
        fields = {child.tag.split("}")[-1]: child.text for child in detail[0]}
        message = fields.get("message") or message
        field = fields.get("field")
    return code, message, field


class Clients:
    """Parsed WSDLs (per process) and per-user bindings of them."""

    def __init__(
        self, endpoints: Endpoints, *, ca_file: Path | None = None, ca_dir: Path | None = None
    ) -> None:
        self.endpoints = endpoints
        self.ca_file = ca_file
        self.ca_dir = ca_dir
        self._wsdl: dict[str, zeep.Client] = {}
        self._lock = threading.Lock()

    def for_user(self, proxy_pem: bytes) -> UserClients:
        context = user_context(proxy_pem, self.ca_file, self.ca_dir)
        return UserClients(self, http_session(context, self.ca_file))

    def _base(self, name: str, url: str, session: requests.Session) -> zeep.Client:
        with self._lock:
            client = self._wsdl.get(name)
            if client is None:
                wsdl = url.rstrip("/") + "/?wsdl"
                transport = Transport(session=session, timeout=TIMEOUT_S)
                client = zeep.Client(wsdl, transport=transport)
                client.transport = Transport(timeout=TIMEOUT_S)  # keep no user's session
                self._wsdl[name] = client
            return client


class ClientCache:
    """Each live session's clients, kept between its requests so that their TLS
    connections (made with the user's proxy) are reused; at most ``size`` sessions,
    the least recently used closed first. A cache only: the session store decides
    whether a session lives, on every request, in every replica."""

    def __init__(self, clients: Clients, size: int = 256) -> None:
        self.clients = clients
        self.size = size
        self._entries: OrderedDict[str, UserClients] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, load_proxy: Callable[[], bytes]) -> UserClients:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        made = self.clients.for_user(load_proxy())
        with self._lock:
            self._entries[key] = made
            while len(self._entries) > self.size:
                _, old = self._entries.popitem(last=False)
                old.close()
        return made

    def drop(self, key: str) -> None:
        with self._lock:
            gone = self._entries.pop(key, None)
        if gone is not None:
            gone.close()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


class UserClients:
    """One request's clients, all acting as the signed-in user."""

    def __init__(self, parent: Clients, session: requests.Session) -> None:
        self._parent = parent
        self.session = session

    def close(self) -> None:
        self.session.close()

    def _service(self, name: str) -> Any:
        url = getattr(self._parent.endpoints, name)
        try:
            base = self._parent._base(name, url, self.session)
        except (requests.RequestException, ZeepError, OSError) as exc:
            raise ServiceDown(f"the {name} service cannot be reached: {_short(exc)}") from None
        mine = copy.copy(base)
        mine.transport = Transport(session=self.session, timeout=TIMEOUT_S)
        binding = next(iter(base.wsdl.bindings))
        return mine.create_service(binding, url)

    def call(self, service: str, operation: str, *args: Any, **kwargs: Any) -> Any:
        """``operation`` of ``service`` (processing, workflow, catalogue); faults typed."""
        proxy = self._service(service)
        try:
            return getattr(proxy, operation)(*args, **kwargs)
        except Fault as fault:
            code, message, field = fault_info(fault)
            raise ServiceRefused(message or code, field=field, service_code=code) from None
        except (requests.RequestException, OSError) as exc:
            raise ServiceDown(f"the {service} service cannot be reached: {_short(exc)}") from None

    def get(self, url: str, *, stream: bool = False) -> requests.Response:
        try:
            return self.session.get(url, timeout=TIMEOUT_S, stream=stream)
        except requests.RequestException as exc:
            raise ServiceDown(f"{url.split('?')[0]} cannot be reached: {_short(exc)}") from None

    def gateway_get(self, path: str) -> requests.Response:
        """A streamed GET of a gateway path (``/private/...``) with the user's rights."""
        return self.get(self._parent.endpoints.gateway.rstrip("/") + path, stream=True)

    def gateway_read(self, path: str, limit: int) -> bytes:
        resp = self.gateway_get(path)
        with resp:
            if resp.status_code != 200:
                raise ServiceRefused(_gateway_message(resp), field="input")
            data = b""
            for chunk in _chunks(resp):
                data += chunk
                if len(data) > limit:
                    raise ServiceRefused(f"{path}: larger than {limit} bytes", field="input")
            return data

    def gateway_put(self, path: str, data: bytes) -> None:
        url = self._parent.endpoints.gateway.rstrip("/") + path + "?overwrite=1"
        try:
            resp = self.session.put(url, data=data, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise ServiceDown(f"the gateway cannot be reached: {_short(exc)}") from None
        if resp.status_code not in (200, 201, 204):
            raise ServiceRefused(_gateway_message(resp), field="output")

    def gateway_mkdir(self, path: str) -> None:
        url = self._parent.endpoints.gateway.rstrip("/") + path + "?op=mkdir&parents=1"
        try:
            resp = self.session.post(url, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise ServiceDown(f"the gateway cannot be reached: {_short(exc)}") from None
        if resp.status_code not in (200, 201, 204, 409):
            raise ServiceRefused(_gateway_message(resp), field="output")


def _chunks(resp: requests.Response) -> Iterator[bytes]:
    yield from resp.iter_content(1 << 16)


def _gateway_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("message") or body.get("error") or resp.reason)
    except ValueError:
        return f"gateway answered {resp.status_code} {resp.reason}"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]

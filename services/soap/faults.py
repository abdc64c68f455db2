"""The service's SOAP faults: one declared fault type per error class, stable codes.

Every fault carries the same detail element, ``<tns:{FaultType}>`` with ``code``,
``message`` and, when they apply, ``field`` (invalid request), ``rule`` (policy
refusal), ``task_id`` and ``request_id``. The detail is placed inside SOAP 1.1's
``<detail>`` (spyne would put declared members beside ``faultcode``, which strict
clients refuse), so the instance members stay empty and the element is built here.
:func:`to_fault` is the one place that maps domain errors to faults.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from lxml import etree
from spyne import Fault, Unicode

from gproc.connectors.base import InvalidRequest, UnknownTool
from gproc.domain import (
    GprocError,
    InvalidTaskRequest,
    LimitExceeded,
    NotReady,
    TaskStateConflict,
    WmsUnavailableError,
)
from gproc.registry import TaskNotFound
from gproc.security.delegation import DelegationError
from gproc.security.errors import CredentialError
from gproc.security.policy import Denied
from gproc.services.fault_detail import init_fault, set_request_id
from gproc.services.soap.types import NS
from gproc.wrappers.base import WmsError

log = logging.getLogger("gproc.soap")
_DETAIL_FIELDS = ("code", "message", "field", "rule", "task_id", "request_id")


class GprocFault(Fault):
    """Base of the declared faults; ``CODE`` is the stable SOAP fault code."""

    __namespace__ = NS
    __type_name__ = "GprocFault"
    code = Unicode
    message = Unicode
    field = Unicode
    rule = Unicode
    task_id = Unicode
    request_id = Unicode
    CODE: str  # the stable fault code, set by each declared fault type

    def __init__(self, message: str, **extra: str | None) -> None:
        init_fault(self, message, extra, NS, _DETAIL_FIELDS)

    def set_request_id(self, request_id: str) -> None:
        set_request_id(self, request_id, NS, _DETAIL_FIELDS)


def _fault(type_name: str, code: str) -> type[GprocFault]:
    with warnings.catch_warnings():
        # spyne's own validation errors carry Client.ValidationError too: that is the point
        warnings.simplefilter("ignore", UserWarning)
        return type(
            type_name,
            (GprocFault,),
            {"__type_name__": type_name, "CODE": code, "__namespace__": NS, "__module__": __name__},
        )


UnknownTaskFault = _fault("UnknownTaskFault", "Client.UnknownTask")
InvalidRequestFault = _fault("InvalidRequestFault", "Client.InvalidRequest")
ValidationFault = _fault("ValidationFault", "Client.ValidationError")
MalformedRequestFault = _fault("MalformedRequestFault", "Client.MalformedRequest")
UnknownOperationFault = _fault("UnknownOperationFault", "Client.UnknownOperation")
NotAuthenticatedFault = _fault("NotAuthenticatedFault", "Client.NotAuthenticated")
NotAuthorisedFault = _fault("NotAuthorisedFault", "Client.NotAuthorised")
StateConflictFault = _fault("StateConflictFault", "Client.StateConflict")
NotReadyFault = _fault("NotReadyFault", "Client.NotReady")
LimitExceededFault = _fault("LimitExceededFault", "Client.LimitExceeded")
CredentialFault = _fault("CredentialFault", "Client.CredentialRefused")
WmsUnavailableFault = _fault("WmsUnavailableFault", "Server.WmsUnavailable")
InternalFault = _fault("InternalFault", "Server.Internal")

ALL_FAULTS: tuple[type[GprocFault], ...] = (
    UnknownTaskFault,
    InvalidRequestFault,
    ValidationFault,
    MalformedRequestFault,
    UnknownOperationFault,
    NotAuthenticatedFault,
    NotAuthorisedFault,
    StateConflictFault,
    NotReadyFault,
    LimitExceededFault,
    CredentialFault,
    WmsUnavailableFault,
    InternalFault,
)
CODES = {f.CODE: f for f in ALL_FAULTS}

COMMON_FAULTS = [
    MalformedRequestFault,
    UnknownOperationFault,
    ValidationFault,
    LimitExceededFault,
    NotAuthenticatedFault,
    InternalFault,
]
"""What any call may get (the first two come from the guard, before dispatch)."""

TASK_FAULTS = [
    *COMMON_FAULTS,
    UnknownTaskFault,
    NotAuthorisedFault,
    StateConflictFault,
    NotReadyFault,
    WmsUnavailableFault,
    InvalidRequestFault,
]
"""What operations on tasks may raise (declared per operation in the WSDL)."""


def to_fault(exc: BaseException) -> Fault:
    """The declared fault for a domain, policy or credential error."""
    if isinstance(exc, Fault):
        return exc
    mapped = _map(exc)
    if mapped is None:
        log.error("internal error", exc_info=exc)
        return InternalFault("internal error; the service log has the details")
    return mapped


def _map(exc: BaseException) -> GprocFault | None:
    simple: list[tuple[type[BaseException], type[GprocFault]]] = [
        (NotReady, NotReadyFault),
        (TaskStateConflict, StateConflictFault),
        (LimitExceeded, LimitExceededFault),
        (WmsUnavailableError, WmsUnavailableFault),
        (WmsError, WmsUnavailableFault),
    ]
    if isinstance(exc, TaskNotFound):
        return UnknownTaskFault(str(exc), task_id=exc.task_id)
    if isinstance(exc, InvalidTaskRequest | InvalidRequest):
        return InvalidRequestFault(str(exc), field=exc.field)
    if isinstance(exc, UnknownTool):
        return InvalidRequestFault(str(exc), field="tool")
    if isinstance(exc, Denied):
        return NotAuthorisedFault(str(exc), rule=exc.rule)
    if isinstance(exc, DelegationError):
        return CredentialFault(str(exc), rule=exc.reason.value)
    if isinstance(exc, CredentialError):
        return CredentialFault(str(exc), rule=str(exc.reason))
    for kind, fault in simple:
        if isinstance(exc, kind):
            return fault(str(exc))
    if isinstance(exc, GprocError):
        return CODES.get(exc.code, InternalFault)(str(exc))
    return None


def fault_envelope(fault: GprocFault) -> bytes:
    """A SOAP 1.1 fault envelope for errors found before spyne sees the request."""
    env = "http://schemas.xmlsoap.org/soap/envelope/"
    root = etree.Element(f"{{{env}}}Envelope", nsmap={"soap11env": env, "tns": NS})
    body = etree.SubElement(root, f"{{{env}}}Body")
    f = etree.SubElement(body, f"{{{env}}}Fault")
    etree.SubElement(f, "faultcode").text = f"soap11env:{fault.CODE}"
    etree.SubElement(f, "faultstring").text = str(fault.info["message"])
    etree.SubElement(f, "detail").append(fault.detail)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


def describe(fault: Fault) -> dict[str, Any]:
    """Fault summary for the access log."""
    return {"fault": fault.faultcode, "message": str(fault.faultstring)[:200]}

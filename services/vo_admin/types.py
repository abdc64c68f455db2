"""Wire types and faults of the VO administration SOAP service (document/literal).

Faults follow the processing service's style: one declared type per error class,
a stable code, and a ``<detail>`` element with ``code``, ``message`` and, when they
apply, ``field``, ``rule`` and the call's ``request_id``.
"""

from __future__ import annotations

import warnings

from spyne import Boolean, ComplexModel, DateTime, Fault, Integer, Unicode

from gproc.services.fault_detail import init_fault, set_request_id

NS = "urn:gproc:vo-admin:1"
_DETAIL_FIELDS = ("code", "message", "field", "rule", "request_id")

NAME = Unicode(max_len=64, min_occurs=1, nillable=False)
DN = Unicode(max_len=512, min_occurs=1, nillable=False)
OPT_DN = Unicode(max_len=512)
GROUP = Unicode(max_len=512, min_occurs=1, nillable=False)
ROLE = Unicode(max_len=64)
TEXT = Unicode(max_len=500)


def many(cls: type) -> type:
    return cls.customize(min_occurs=0, max_occurs="unbounded")  # type: ignore[attr-defined, no-any-return]


class Model(ComplexModel):
    __namespace__ = NS


class VoInfo(Model):
    name = Unicode
    description = Unicode


class Member(Model):
    vo = Unicode
    dn = Unicode
    ca_dn = Unicode
    email = Unicode
    suspended = Boolean
    suspended_reason = Unicode
    suspended_at = DateTime
    created_at = DateTime
    fqans = many(Unicode)


class AuditEntry(Model):
    id = Integer
    time = DateTime
    actor = Unicode
    vo = Unicode
    action = Unicode
    target = Unicode
    detail = Unicode  # JSON object


class ImportResult(Model):
    vo = Unicode
    groups = Integer
    roles = Integer
    members_added = Integer
    members_updated = Integer
    members_removed = Integer


class VoAdminFault(Fault):
    """Base of the declared faults; ``CODE`` is the stable SOAP fault code."""

    __namespace__ = NS
    __type_name__ = "VoAdminFault"
    code = Unicode
    message = Unicode
    field = Unicode
    rule = Unicode
    request_id = Unicode
    CODE: str

    def __init__(self, message: str, **extra: str | None) -> None:
        init_fault(self, message, extra, NS, _DETAIL_FIELDS)

    def set_request_id(self, request_id: str) -> None:
        set_request_id(self, request_id, NS, _DETAIL_FIELDS)


def _fault(type_name: str, code: str) -> type[VoAdminFault]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return type(
            type_name,
            (VoAdminFault,),
            {"__type_name__": type_name, "CODE": code, "__namespace__": NS, "__module__": __name__},
        )


NotAuthenticatedFault = _fault("NotAuthenticatedFault", "Client.NotAuthenticated")
NotAuthorisedFault = _fault("NotAuthorisedFault", "Client.NotAuthorised")
NotFoundFault = _fault("NotFoundFault", "Client.NotFound")
ConflictFault = _fault("ConflictFault", "Client.Conflict")
InvalidRequestFault = _fault("InvalidRequestFault", "Client.InvalidRequest")
InternalFault = _fault("InternalFault", "Server.Internal")

ADMIN_FAULTS = [
    NotAuthenticatedFault,
    NotAuthorisedFault,
    NotFoundFault,
    ConflictFault,
    InvalidRequestFault,
    InternalFault,
]

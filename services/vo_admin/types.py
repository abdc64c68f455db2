"""Wire types and faults of the VO administration SOAP service (document/literal).

Faults are the chassis's (``gproc.services.chassis``) in this service's own
namespace: one declared type per error class, a stable code, and a ``<detail>``
element with ``code``, ``message`` and, when they apply, ``field``, ``rule``,
``index``, ``ac_problem`` and the call's ``request_id``.
"""

from __future__ import annotations

from spyne import Boolean, ComplexModel, DateTime, Integer, Unicode

from gproc import errors
from gproc.services.chassis import ErrorTable, FaultSet

NS = "urn:gproc:vo-admin:1"

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


FAULTS = FaultSet(
    NS,
    "VoAdminFault",
    {
        "NotAuthenticatedFault": "Client.NotAuthenticated",
        "NotAuthorisedFault": "Client.NotAuthorised",
        "NotFoundFault": "Client.NotFound",
        "ConflictFault": "Client.Conflict",
        "InvalidRequestFault": "Client.InvalidRequest",
        "InternalFault": "Server.Internal",
    },
    module=__name__,
)
VoAdminFault = FAULTS.base
NotAuthenticatedFault = FAULTS.NotAuthenticatedFault
NotAuthorisedFault = FAULTS.NotAuthorisedFault
NotFoundFault = FAULTS.NotFoundFault
ConflictFault = FAULTS.ConflictFault
InvalidRequestFault = FAULTS.InvalidRequestFault
InternalFault = FAULTS.InternalFault

ERRORS = ErrorTable(
    FAULTS,
    {
        errors.NotFound.code: NotFoundFault,
        errors.Conflict.code: ConflictFault,
        errors.InvalidRequest.code: InvalidRequestFault,
        errors.LimitExceeded.code: FAULTS.LimitExceededFault,
        errors.NotAuthenticated.code: NotAuthenticatedFault,
        errors.NotAuthorised.code: NotAuthorisedFault,
        errors.Internal.code: InternalFault,
    },
)
"""Error root code -> declared fault: the VO admin service's one mapping."""

ADMIN_FAULTS = list(FAULTS.all)
"""Every operation may answer any of the service's faults (guard ones included)."""

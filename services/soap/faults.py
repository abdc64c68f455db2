"""The processing service's declared SOAP faults and its one error table.

Every fault carries the chassis detail element ``<tns:{FaultType}>`` (code, message
and, when they apply, field, rule, task_id, index, ac_problem, request_id) in
``urn:gproc:processing:1``. :data:`ERRORS` maps the error root's codes to them.
"""

from __future__ import annotations

from gproc import errors
from gproc.services.chassis import ErrorTable, FaultSet, ServiceFault
from gproc.services.soap.types import NS

FAULTS = FaultSet(
    NS,
    "GprocFault",
    {
        "UnknownTaskFault": "Client.UnknownTask",
        "InvalidRequestFault": "Client.InvalidRequest",
        "NotAuthorisedFault": "Client.NotAuthorised",
        "StateConflictFault": "Client.StateConflict",
        "NotReadyFault": "Client.NotReady",
        "CredentialFault": "Client.CredentialRefused",
        "WmsUnavailableFault": "Server.WmsUnavailable",
        "StorageUnavailableFault": "Server.StorageUnavailable",
        "UnavailableFault": "Server.Unavailable",
    },
    module=__name__,
)
GprocFault = FAULTS.base
UnknownTaskFault = FAULTS.UnknownTaskFault
InvalidRequestFault = FAULTS.InvalidRequestFault
ValidationFault = FAULTS.ValidationFault
MalformedRequestFault = FAULTS.MalformedRequestFault
UnknownOperationFault = FAULTS.UnknownOperationFault
NotAuthenticatedFault = FAULTS.NotAuthenticatedFault
NotAuthorisedFault = FAULTS.NotAuthorisedFault
StateConflictFault = FAULTS.StateConflictFault
NotReadyFault = FAULTS.NotReadyFault
LimitExceededFault = FAULTS.LimitExceededFault
CredentialFault = FAULTS.CredentialFault
WmsUnavailableFault = FAULTS.WmsUnavailableFault
StorageUnavailableFault = FAULTS.StorageUnavailableFault
UnavailableFault = FAULTS.UnavailableFault
InternalFault = FAULTS.InternalFault
ALL_FAULTS: tuple[type[ServiceFault], ...] = FAULTS.all

ERRORS = ErrorTable(
    FAULTS,
    {
        errors.InvalidRequest.code: InvalidRequestFault,
        errors.NotFound.code: UnknownTaskFault,
        errors.Conflict.code: StateConflictFault,
        "Client.StateConflict": StateConflictFault,
        "Client.NotReady": NotReadyFault,
        errors.LimitExceeded.code: LimitExceededFault,
        errors.NotAuthenticated.code: NotAuthenticatedFault,
        errors.NotAuthorised.code: NotAuthorisedFault,
        errors.CredentialRefused.code: CredentialFault,
        errors.Unavailable.code: UnavailableFault,
        errors.WmsUnavailable.code: WmsUnavailableFault,
        errors.StorageUnavailable.code: StorageUnavailableFault,
        errors.Internal.code: InternalFault,
    },
)
"""Error root code -> declared fault: the processing service's one mapping."""

COMMON_FAULTS = [
    MalformedRequestFault,
    UnknownOperationFault,
    ValidationFault,
    LimitExceededFault,
    NotAuthenticatedFault,
    NotAuthorisedFault,
    InternalFault,
]
"""What any call may get (the guard's, spyne's validation, authentication)."""

TASK_FAULTS = [
    *COMMON_FAULTS,
    UnknownTaskFault,
    StateConflictFault,
    NotReadyFault,
    WmsUnavailableFault,
    StorageUnavailableFault,
    UnavailableFault,
    InvalidRequestFault,
]
"""What operations on tasks may raise (declared per operation in the WSDL)."""

to_fault = ERRORS.to_fault

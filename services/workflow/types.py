"""Wire types and faults of the workflow SOAP service (document/literal)."""

from __future__ import annotations

from spyne import Boolean, ByteArray, ComplexModel, DateTime, Integer, Long, Unicode

from gproc import errors
from gproc.services.chassis import ErrorTable, FaultSet

NS = "urn:gproc:workflow:1"
WORKFLOW_ID = Unicode(max_len=64, min_occurs=1, nillable=False, pattern="[0-9a-f]{1,64}")


def many(cls: type) -> type:
    return cls.customize(min_occurs=0, max_occurs="unbounded")  # type: ignore[attr-defined, no-any-return]


class Model(ComplexModel):
    __namespace__ = NS


class WorkflowSource(Model):
    """Data of a start task (``A0``, ``A0.o1``) or a workflow input (``red``): a gateway
    location, an allowed ``file://`` path, a catalogue dataset (``dataset:<datagroup>/
    <dataset>``, ``dataset:<id>``) or query (``gql:<GQL>``, one branch per dataset
    found), or the raster itself (``content``). Several sources under one name fan out."""

    name = Unicode(max_len=70, min_occurs=1, nillable=False)
    location = Unicode(max_len=4096)
    content = ByteArray


class WorkflowSpec(Model):
    document = Unicode(min_occurs=1, nillable=False)  # SiLK text or structured JSON
    form = Unicode(max_len=8)  # silk | json; default: JSON when it starts with "{"
    name = Unicode(max_len=32)
    sources = many(WorkflowSource)
    client_request_id = Unicode(max_len=128)
    callback_url = Unicode(max_len=2048)
    callback_secret = Unicode(max_len=128)
    keep_intermediate = Boolean
    submit = Boolean
    # a proxy delegated earlier (the processing service's DelegateProxy, same store):
    # every node job gets it as x509userproxy
    delegation_id = Unicode(max_len=128)


class NodeStatus(Model):
    name = Unicode
    node = Unicode
    branch = Integer
    tool = Unicode
    state = Unicode
    job_id = Unicode
    exit_code = Integer
    hold_reason = Unicode
    detail = Unicode
    runs = Integer
    final = Boolean


class WorkflowStatus(Model):
    workflow_id = Unicode
    name = Unicode
    form = Unicode
    state = Unicode
    state_reason = Unicode
    owner_dn = Unicode
    attempt = Integer
    dagman_job_id = Unicode
    callback_url = Unicode
    callback_secret = Unicode  # only in RegisterWorkflow's answer
    created = DateTime
    updated = DateTime
    submitted = DateTime
    finished = DateTime
    tools = many(Unicode)
    nodes = many(NodeStatus)


class WorkflowPage(Model):
    total = Integer
    workflows = many(WorkflowStatus)


class WorkflowEvent(Model):
    time = DateTime
    kind = Unicode
    state = Unicode
    detail = Unicode


class LogFile(Model):
    name = Unicode
    text = Unicode


class WorkflowLog(Model):
    workflow_id = Unicode
    state = Unicode
    events = many(WorkflowEvent)
    logs = many(LogFile)


class WorkflowOutputFile(Model):
    node = Unicode
    port = Unicode
    name = Unicode
    final = Boolean
    size = Long
    adler32 = Unicode
    sha256 = Unicode
    inline = Boolean
    content = ByteArray
    location = Unicode


FAULTS = FaultSet(
    NS,
    "WorkflowFault",
    {
        "NotAuthorisedFault": "Client.NotAuthorised",
        "InvalidRequestFault": "Client.InvalidRequest",
        "InvalidWorkflowFault": "Client.InvalidWorkflow",
        "UnknownWorkflowFault": "Client.UnknownWorkflow",
        "NotFoundFault": "Client.NotFound",
        "StateConflictFault": "Client.StateConflict",
        "ConflictFault": "Client.Conflict",
        "CredentialRefusedFault": "Client.CredentialRefused",
        "WmsUnavailableFault": "Server.WmsUnavailable",
        "UnavailableFault": "Server.Unavailable",
    },
    module=__name__,
)

ERRORS = ErrorTable(
    FAULTS,
    {
        errors.NotAuthenticated.code: FAULTS.NotAuthenticatedFault,
        errors.NotAuthorised.code: FAULTS.NotAuthorisedFault,
        errors.InvalidRequest.code: FAULTS.InvalidRequestFault,
        "Client.InvalidWorkflow": FAULTS.InvalidWorkflowFault,
        "Client.UnknownWorkflow": FAULTS.UnknownWorkflowFault,
        errors.NotFound.code: FAULTS.NotFoundFault,
        "Client.StateConflict": FAULTS.StateConflictFault,
        errors.Conflict.code: FAULTS.ConflictFault,
        errors.LimitExceeded.code: FAULTS.LimitExceededFault,
        errors.CredentialRefused.code: FAULTS.CredentialRefusedFault,
        errors.WmsUnavailable.code: FAULTS.WmsUnavailableFault,
        errors.Unavailable.code: FAULTS.UnavailableFault,
        errors.Internal.code: FAULTS.InternalFault,
    },
)
"""Error root code -> declared fault: the workflow service's one mapping."""

ALL_FAULTS = list(FAULTS.all)

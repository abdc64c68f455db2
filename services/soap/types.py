"""Wire types of the G-PROC SOAP service (document/literal): spyne models only.

They mirror the core's domain types but stay separate so the WSDL is a stable
contract: the core can change without clients noticing. Sizes and patterns are
declared here so spyne's validation refuses oversized values before any code runs.
"""

from __future__ import annotations

from spyne import (
    Boolean,
    ByteArray,
    ComplexModel,
    DateTime,
    Double,
    Integer,
    Long,
    Unicode,
)

NS = "urn:gproc:processing:1"
TASK_ID = Unicode(max_len=64, pattern="[0-9a-f]{1,64}")


def many(cls: type, *, required: bool = False) -> type:
    """A repeated element (unwrapped), so clients send plain lists."""
    return cls.customize(min_occurs=1 if required else 0, max_occurs="unbounded")  # type: ignore[attr-defined, no-any-return]


def one(cls: type) -> type:
    """A required, non-nillable element."""
    return cls.customize(min_occurs=1, nillable=False)  # type: ignore[attr-defined, no-any-return]


class Model(ComplexModel):
    __namespace__ = NS


# ---- tools ---------------------------------------------------------------
class ParamInfo(Model):
    name = Unicode
    type = Unicode
    description = Unicode
    required = Boolean
    default = Unicode
    minimum = Double
    maximum = Double
    choices = many(Unicode)


class InputPortInfo(Model):
    name = Unicode
    description = Unicode
    multiple = Boolean
    min_count = Integer
    max_count = Integer


class OutputPortInfo(Model):
    name = Unicode
    description = Unicode
    file_name = Unicode
    media_type = Unicode


class ToolSummary(Model):
    name = Unicode
    description = Unicode
    gisheo_prototype = Unicode


class ToolInfo(Model):
    name = Unicode
    description = Unicode
    gisheo_prototype = Unicode
    inputs = many(InputPortInfo)
    outputs = many(OutputPortInfo)
    params = many(ParamInfo)
    cpus = Integer
    memory_mb = Integer
    disk_mb = Integer


# ---- registration ----------------------------------------------------------
class NameValue(Model):
    name = one(Unicode(max_len=64))
    value = one(Unicode(max_len=512))


class InputData(Model):
    """One input: ``name`` is the input port (or ``inIMG_n`` in GiSHEO notation);
    either ``content`` (base64, capped) or ``location`` (a URL the service may read)."""

    name = one(Unicode(max_len=64))
    location = Unicode(max_len=4096)
    content = ByteArray


class OutputLabel(Model):
    port = one(Unicode(max_len=64))
    label = one(Unicode(max_len=64))


class TaskSpec(Model):
    """A structured request (``tool``, ``params``, ``inputs``) or the GiSHEO notation
    (``processing`` + ``argument_list``, inputs named ``inIMG_n``)."""

    client_request_id = Unicode(max_len=128)
    tool = Unicode(max_len=64)
    params = many(NameValue)
    inputs = many(InputData)
    outputs = many(OutputLabel)
    processing = Unicode(max_len=1024)
    argument_list = Unicode(max_len=4096)
    # a proxy delegated earlier (DelegateProxy): the job gets it as x509userproxy
    delegation_id = Unicode(max_len=128)
    # state changes are POSTed to callback_url, signed with callback_secret (HMAC-SHA256)
    callback_url = Unicode(max_len=2048)
    callback_secret = Unicode(max_len=128)


class RegisteredTask(Model):
    task_id = Unicode
    client_request_id = Unicode
    tool = Unicode
    state = Unicode
    accounting_group = Unicode
    job_description = Unicode


# ---- tasks -----------------------------------------------------------------
class TaskStatus(Model):
    task_id = Unicode
    tool = Unicode
    state = Unicode
    state_reason = Unicode
    wms_job_id = Unicode
    attempt = Integer
    hold_reason = Unicode
    hold_code = Integer
    exit_code = Integer
    owner_dn = Unicode
    owner_vo = Unicode
    client_request_id = Unicode
    created = DateTime
    updated = DateTime
    submitted = DateTime
    started = DateTime
    finished = DateTime


class TaskPage(Model):
    """``total`` only when asked for (``with_total``); ``next_page_token`` is absent
    on the last page and is passed back as ``page_token`` for the next one."""

    total = Integer
    offset = Integer
    tasks = many(TaskStatus)
    next_page_token = Unicode


class TaskEvent(Model):
    time = DateTime
    kind = Unicode
    state = Unicode
    detail = Unicode


class TaskLog(Model):
    task_id = Unicode
    state = Unicode
    events = many(TaskEvent)
    stdout = Unicode
    stderr = Unicode


class TaskOutput(Model):
    """A result file: checksums always; ``content`` when at most the inline cap,
    else ``location`` (served by the data gateway, when one is configured)."""

    port = Unicode
    name = Unicode
    size = Long
    adler32 = Unicode
    sha256 = Unicode
    inline = Boolean
    content = ByteArray
    location = Unicode


class TaskOutputs(Model):
    task_id = Unicode
    state = Unicode
    outputs = many(TaskOutput)


# ---- delegation and service ------------------------------------------------
class DelegationResult(Model):
    delegation_id = Unicode
    certificate_request = Unicode
    dn = Unicode
    expires = DateTime
    myproxy_username = Unicode  # SetProxyRenewal: renewed from this MyProxy credential


class Limits(Model):
    max_batch = Integer
    max_inline_input_bytes = Long
    max_inline_output_bytes = Long
    max_message_bytes = Long
    max_depth = Integer


class ServiceInfo(Model):
    version = Unicode
    wms = Unicode
    wms_reachable = Boolean
    wms_version = Unicode
    wms_detail = Unicode
    pool_slots = Integer
    caller_dn = Unicode
    caller_fqans = many(Unicode)
    accounting_group = Unicode
    limits = Limits

"""HTCondor implementation of the gproc WMS interface (htcondor2 bindings)."""

from wrappers.htcondor.schedd import HTCondorWMS
from wrappers.htcondor.submit import SubmitValueError, quote_arguments, quote_environment

__all__ = ["HTCondorWMS", "SubmitValueError", "quote_arguments", "quote_environment"]

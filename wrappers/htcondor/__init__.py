"""HTCondor implementation of the gproc WMS interface (htcondor2 bindings)."""

from gproc.wrappers.htcondor.schedd import HTCondorWMS
from gproc.wrappers.htcondor.submit import SubmitValueError, quote_arguments, quote_environment

__all__ = ["HTCondorWMS", "SubmitValueError", "quote_arguments", "quote_environment"]

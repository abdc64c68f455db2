"""From the error root (``gproc.errors``) to one front's declared faults, by code.

Each front has one table, error code -> declared fault type. A code the table does
not name falls back to the code of a parent category (``Client.NotReady`` ->
``Client.StateConflict`` -> ``Client.Conflict``), so a new error subclass is mapped
the day it is written. The fault detail carries the error's ``field``, ``rule``,
``task_id`` and ``index``. Anything that is not a known error is logged and
answered with ``Server.Internal``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from spyne import Fault

from gproc import errors
from gproc.security.delegation import DelegationError
from gproc.security.errors import CredentialError
from gproc.security.policy import Denied
from gproc.services.chassis.faults import FaultSet, ServiceFault

log = logging.getLogger("gproc.services")

# The security layer's refusals do not derive from the root (security/ is used by the
# entry points, not below the core); every other layer's errors do, and need no entry.
_LEGACY: tuple[tuple[type[BaseException], Callable[..., errors.GprocError]], ...] = (
    (Denied, lambda e: errors.NotAuthorised(str(e), rule=e.rule)),
    (DelegationError, lambda e: errors.CredentialRefused(str(e), rule=e.reason.value)),
    (CredentialError, lambda e: errors.CredentialRefused(str(e), rule=str(e.reason))),
)


def as_error(exc: BaseException) -> tuple[errors.GprocError, str] | None:
    """The root error for ``exc`` and the message to show, or None if unknown."""
    if isinstance(exc, errors.GprocError):
        return exc, str(exc)
    for kind, convert in _LEGACY:
        if isinstance(exc, kind):
            return convert(exc), str(exc)
    return None


def codes_of(err: errors.GprocError) -> list[str]:
    """The error's code, then its categories' codes, most specific first."""
    out = [err.code]
    for cls in type(err).__mro__:
        code = vars(cls).get("code")
        if isinstance(code, str) and code not in out:
            out.append(code)
    return out


def _extra(info: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in info.items() if k not in ("code", "message")}


class ErrorTable:
    """One front's mapping: error code -> declared fault type (see module doc)."""

    def __init__(self, faults: FaultSet, table: Mapping[str, type[ServiceFault]]) -> None:
        unknown = [t for t in table.values() if t not in faults.all]
        if unknown:
            raise ValueError(f"faults not declared by {faults.ns}: {unknown}")
        self.faults = faults
        self.table = dict(table)

    def fault_type(self, err: errors.GprocError) -> type[ServiceFault] | None:
        for code in codes_of(err):
            if code in self.table:
                return self.table[code]
        return None

    def to_fault(self, exc: BaseException) -> Fault:
        """The declared fault for any exception (a declared fault passes through)."""
        if isinstance(exc, ServiceFault):
            if self.faults.declared(exc):
                return exc
            own = self.faults.of(exc.CODE)  # another service's fault: this one's twin
            if own is not None:
                return own(**{"message": exc.info["message"], **_extra(exc.info)})
        seen = as_error(exc)
        kind = self.fault_type(seen[0]) if seen else None
        if seen is None or kind is None:
            log.error("internal error", exc_info=exc)
            return self.faults.InternalFault("internal error; the service log has the details")
        err, message = seen
        return kind(message, field=err.field, rule=err.rule, task_id=err.task_id, index=err.index)

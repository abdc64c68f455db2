"""The one error root of gproc, with stable codes.

Every error a front may report derives from :class:`GprocError`. This module is a
leaf (standard library only), so every layer may import it: connectors, wrappers,
the storage gateway and security raise subclasses of these categories, the core
adds the batch position, and each front maps ``code`` to its own declared fault
(SOAP) or status (HTTP) in one table. Codes never change meaning once published.
"""

from __future__ import annotations

from typing import ClassVar, Self


class GprocError(Exception):
    """Base of every reportable error.

    ``code`` is stable (``Client.*``: the caller can fix it; ``Server.*``: the
    service or a system behind it failed). ``retryable`` says whether the same
    request may succeed later unchanged. ``field``, ``rule``, ``task_id`` and
    ``index`` locate the problem when they apply.
    """

    code: ClassVar[str] = "Server.Internal"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        task_id: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.rule = rule
        self.task_id = task_id
        self.index = index

    def __str__(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"item {self.index}")
        if self.task_id:
            where.append(f"task {self.task_id}")
        if self.field and not self.message.startswith(f"{self.field}:"):
            where.append(self.field)
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def at(self, index: int | None = None, task_id: str | None = None) -> Self:
        """A copy that names its place in a batch (the original is left as it is)."""
        located = self.__class__.__new__(self.__class__)  # copy.copy would re-run __init__
        located.__dict__.update(self.__dict__)
        located.args = self.args
        located.__traceback__ = self.__traceback__
        if index is not None:
            located.index = index
        if task_id is not None:
            located.task_id = task_id
        return located

    def details(self) -> dict[str, str]:
        """The non-empty locating fields, as a front puts them in a fault detail."""
        out = {"code": self.code, "message": self.message}
        for name in ("field", "rule", "task_id", "index"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        return out


# ---- caller errors -----------------------------------------------------------------
class InvalidRequest(GprocError):
    """A value in the request is wrong (``field`` names it)."""

    code = "Client.InvalidRequest"


class NotFound(GprocError):
    """The named object does not exist (or the caller may not know that it does)."""

    code = "Client.NotFound"


class Conflict(GprocError):
    """The object exists already, or its state does not allow the operation."""

    code = "Client.Conflict"


class LimitExceeded(GprocError):
    code = "Client.LimitExceeded"


class NotAuthenticated(GprocError):
    code = "Client.NotAuthenticated"


class NotAuthorised(GprocError):
    """The caller is known but may not do this (``rule`` names the deciding rule)."""

    code = "Client.NotAuthorised"


class CredentialRefused(GprocError):
    """A credential the caller handed over (a proxy, an AC, a key) was refused."""

    code = "Client.CredentialRefused"


# ---- service-side errors -----------------------------------------------------------
class Unavailable(GprocError):
    """A system behind the service is down; the same request may succeed later."""

    code = "Server.Unavailable"
    retryable = True


class WmsUnavailable(Unavailable):
    code = "Server.WmsUnavailable"


class StorageUnavailable(Unavailable):
    """The service's own storage (database, task directories) refused a write:
    disk full, read-only, unreachable. Nothing partial is kept."""

    code = "Server.StorageUnavailable"


class Internal(GprocError):
    code = "Server.Internal"

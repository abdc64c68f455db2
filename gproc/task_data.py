"""Where a task's data comes from and goes to: the interface the core is given.

The core stages a task's inputs at registration and hands a finished task's outputs
on; *where* the data lives is the entry point's business (local files for the CLI,
the storage gateway for network callers). An entry point builds one
:class:`TaskData` and gives it to :class:`gproc.lifecycle.TaskService` at
construction; the tracker uses the same one for stage-out.

Identities. Inputs are read with the caller's own validated credential (the
:class:`Credential` an entry point puts in :attr:`gproc.domain.Owner.credential`).
Outputs are stored long after the caller has gone, so the sink receives a
:class:`TaskOwner` (the owner as recorded at registration) and acts for that owner
through a credential of its own service, never by impersonating a caller
(``services/gateway_tasks.py`` documents what that credential may do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gproc.connectors.base import ToolRequest
    from gproc.domain import OutputFile, Owner
    from gproc.staging import InputResolver


@runtime_checkable
class Credential(Protocol):
    """A credential an entry point validated for the caller (e.g. an X.509 proxy
    identity): the core only reads who it names; staging reads data with it."""

    @property
    def subject_grid(self) -> str: ...


@dataclass(frozen=True)
class TaskOwner:
    """A task's owner as recorded at registration: what a sink may act for."""

    task_id: str
    dn: str
    vo: str | None
    fqans: tuple[str, ...]  # as validated at registration, primary first
    x509_proxy: Path | None = None  # the owner's delegated proxy, when the task has one
    tool: str = ""  # what the task ran, and its request as recorded (JSON): for
    request_json: str | None = None  # sinks that record provenance (the catalogue)


class TaskData(ABC):
    """Input staging and output storage for tasks."""

    @abstractmethod
    def resolver_for(self, owner: Owner) -> InputResolver:
        """How to copy the sources ``owner`` names (with ``owner``'s rights)."""

    @abstractmethod
    def store_outputs(self, owner: TaskOwner, outputs: Sequence[OutputFile]) -> Mapping[str, str]:
        """Store a finished task's outputs for its owner; {port: where it is stored}.

        Ports missing from the answer stay retrievable from the service only.
        Raising means "try again at the next tracker cycle": the task completes only
        once this returned."""

    def location(self, stored_at: str) -> str:
        """What callers are handed for an output stored at ``stored_at``."""
        return stored_at

    def check_request(self, owner: Owner, request: ToolRequest) -> None:  # noqa: B027
        """Refuse, at registration and before anything is staged, a request whose
        inputs this task data cannot serve (e.g. a catalogue dataset of a type the
        tool's port does not accept): raise an ``InvalidRequest`` whose ``field``
        names the input (``inputs.<port>``). Decorators forward to what they wrap."""


class LocalTaskData(TaskData):
    """Inputs from local files (through ``resolve``); outputs stay in the task directory."""

    def __init__(self, resolve: InputResolver) -> None:
        self.resolve = resolve

    def resolver_for(self, owner: Owner) -> InputResolver:
        return self.resolve

    def store_outputs(self, owner: TaskOwner, outputs: Sequence[OutputFile]) -> Mapping[str, str]:
        return {}

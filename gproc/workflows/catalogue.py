"""Catalogue data as a workflow's starting data: datasets and queries, one branch each.

A start task's output (SiLK ``A0:= [o1:output="..."]``, a structured input, or a
source given at registration) may name, besides a gateway location or a file:

* ``dataset:<datagroup>/<dataset>`` or ``dataset:<catalogue id>``: one dataset, as
  single tasks take it;
* ``gql:<GQL query>``: every dataset the query finds, one branch per dataset (a
  fan-out), in the catalogue's name order (so two queries feeding one node pair up
  by name).

Both are resolved when the workflow is registered, with the owner's rights: a
dataset the owner may not see is refused like a missing one, and a query finds only
datasets the owner may see. The workflow records the datasets' ids
(``dataset:<id>``), so later catalogue changes do not change what it runs. A query
finding more than ``max_branches`` datasets is refused (:class:`TooManyBranches`,
naming the start port). The catalogue itself lives in the services layer: the
workflow service is given a :class:`WorkflowCatalogue` at construction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

from gproc.domain import Owner

if TYPE_CHECKING:
    from gproc.workflows.compile import CompiledWorkflow
from gproc.errors import InvalidRequest, LimitExceeded, NotFound
from gproc.workflows.document import PortRef, WorkflowError

DATASET = "dataset:"
QUERY = "gql:"
MAX_QUERY_CHARS = 4096

Expand = Callable[[PortRef, str], tuple[str, ...]]
"""A start port's source -> the sources it stands for (one branch each)."""


class TooManyBranches(LimitExceeded):
    """A catalogue query finds more datasets than a workflow may fan out over."""


class WorkflowCatalogue(ABC):
    """What the workflow core needs from the data catalogue."""

    @abstractmethod
    def dataset(self, owner: Owner, ref: str) -> str:
        """``dataset:<id>`` of the dataset ``ref`` names, if ``owner`` may see it
        (else a NotFound/InvalidRequest error)."""

    @abstractmethod
    def query(self, owner: Owner, gql: str, limit: int) -> list[str]:
        """``dataset:<id>`` of the datasets ``gql`` finds for ``owner``, in name order;
        at most ``limit + 1`` (so that "more than ``limit``" can be told)."""

    @abstractmethod
    def check_type(self, owner: Owner, ref: str, tool: str, port: str) -> None:
        """Refuse (InvalidRequest) a dataset whose type ``tool``'s ``port`` does not take."""


def is_catalogue_source(source: str) -> bool:
    return source.startswith((DATASET, QUERY))


def expander(catalogue: WorkflowCatalogue | None, owner: Owner, max_branches: int) -> Expand:
    """The expansion of catalogue sources for one registration by ``owner``."""

    def expand(ref: PortRef, source: str) -> tuple[str, ...]:
        if not is_catalogue_source(source):
            return (source,)
        if catalogue is None:
            raise WorkflowError(
                f"{ref}: catalogue data ({source[:40]!r}) needs the data catalogue, "
                "which this service does not use",
                field=str(ref),
            )
        try:
            if source.startswith(DATASET):
                return (catalogue.dataset(owner, source),)
            return _query(catalogue, owner, ref, source[len(QUERY) :].strip(), max_branches)
        except (InvalidRequest, NotFound) as exc:
            if isinstance(exc, WorkflowError):
                raise
            raise WorkflowError(f"{ref}: {exc.message}", field=str(ref)) from None

    return expand


def _query(
    catalogue: WorkflowCatalogue, owner: Owner, ref: PortRef, gql: str, limit: int
) -> tuple[str, ...]:
    if not gql or len(gql) > MAX_QUERY_CHARS:
        raise WorkflowError(
            f"{ref}: a query is gql: followed by 1-{MAX_QUERY_CHARS} characters of GQL",
            field=str(ref),
        )
    found = catalogue.query(owner, gql, limit)
    if len(found) > limit:
        raise TooManyBranches(
            f"{ref}: the query {gql[:80]!r} finds more than {limit} datasets, the most a "
            "workflow may fan out over; narrow it",
            field=str(ref),
        )
    if not found:
        raise WorkflowError(f"{ref}: the query {gql[:80]!r} finds no dataset", field=str(ref))
    return tuple(found)


def check_dataset_types(catalogue: WorkflowCatalogue, owner: Owner, wf: CompiledWorkflow) -> None:
    """Every dataset a node reads must be of a type its tool's port takes."""
    datasets = {name: src for name, src in wf.inputs if src.startswith(DATASET)}
    for job in wf.jobs:
        for port, files in job.port_inputs.items():
            for name in files:
                if name not in datasets:
                    continue
                try:
                    catalogue.check_type(owner, datasets[name], job.tool, port)
                except InvalidRequest as exc:
                    raise WorkflowError(
                        f"node {job.node}: {job.tool}.{port}: {exc.message}", field=job.node
                    ) from None

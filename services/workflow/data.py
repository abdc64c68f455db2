"""Where a network workflow's data comes from and goes to: the storage gateway and the
data catalogue, given to the workflow core (``gproc.workflows``) as collaborators.

* :class:`CatalogueStartData` resolves a start task's ``dataset:`` references and
  ``gql:`` queries with the owner's validated identity (the core's
  :class:`~gproc.workflows.catalogue.WorkflowCatalogue`); the datasets are then staged
  by the owner's resolver (:class:`~gproc.services.catalogue_tasks.DatasetInputs`).
* :func:`gateway_sink` stores a completed workflow's final outputs in the owner's
  private gateway area (``<home>/workflows/<workflow id>/``), as task outputs are.
* :func:`catalogue_sink` wraps a sink: the stored final outputs that are rasters are
  registered (datagroup ``workflows``, dataset ``<workflow id>.<node>.<port>``) with
  provenance (workflow, node, tool, parameters, the workflow's input datasets); a
  failure to catalogue is logged, never fails the workflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.gql import parse_gql
from gproc.catalogue.model import Fields, NotARaster, Provenance
from gproc.catalogue.query import MAX_LIMIT, Query
from gproc.catalogue.service import Catalogue
from gproc.domain import OutputFile, Owner
from gproc.errors import GprocError, InvalidRequest
from gproc.security.identity import Identity
from gproc.task_data import TaskData, TaskOwner
from gproc.workflow_models import WorkflowRow
from gproc.workflows.catalogue import DATASET, WorkflowCatalogue
from gproc.workflows.service import OutputSink, jobs_of

log = logging.getLogger("gproc.catalogue.workflows")
OUTPUT_GROUP = "workflows"


class CatalogueStartData(WorkflowCatalogue):
    """Datasets and GQL queries of the catalogue, with the owner's rights."""

    def __init__(
        self,
        catalogue: Catalogue,
        input_types: Mapping[str, Sequence[str]] | None = None,
        gazetteer: Gazetteer | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.input_types = {k: tuple(v) for k, v in (input_types or {}).items()}
        self.gazetteer = gazetteer
        if gazetteer is None and isinstance(catalogue.engine, SqlEngine):
            self.gazetteer = Gazetteer(catalogue.engine)  # place: terms

    def dataset(self, owner: Owner, ref: str) -> str:
        return DATASET + self.catalogue.resolve_input(_identity(owner), ref).id

    def check_type(self, owner: Owner, ref: str, tool: str, port: str) -> None:
        """``[catalogue] input_types`` (``"<tool>.<port>"``), as for single tasks."""
        accepted = self.input_types.get(f"{tool}.{port}", ())
        if accepted:
            Catalogue.check_type(self.catalogue.resolve_input(_identity(owner), ref), accepted)

    def query(self, owner: Owner, gql: str, limit: int) -> list[str]:
        identity = _identity(owner)
        where = parse_gql(gql, self.gazetteer)
        found: list[str] = []
        token: str | None = None
        while len(found) <= limit:
            page = self.catalogue.search(
                identity, Query(where, limit=min(limit + 1 - len(found), MAX_LIMIT), token=token)
            )
            found += [DATASET + d.id for d in page.items if not d.missing]
            token = page.token
            if token is None:
                break
        return found


def _identity(owner: Owner) -> Identity:
    if not isinstance(owner.credential, Identity):
        raise InvalidRequest("catalogue data needs an authenticated owner", field="sources")
    return owner.credential


def workflow_owner(row: WorkflowRow) -> TaskOwner:
    """A workflow's owner as task data sees one (its outputs folder is the workflow's)."""
    return TaskOwner(
        task_id=row.id,
        dn=row.owner_dn,
        vo=row.owner_vo,
        fqans=tuple(json.loads(row.owner_fqans or "[]")),
        x509_proxy=Path(row.x509_proxy) if row.x509_proxy else None,
        tool="workflow",
    )


def gateway_sink(task_data: TaskData) -> OutputSink:
    """The core's output sink over a task data (the gateway's, ``outputs_dir`` workflows)."""

    def sink(row: WorkflowRow, outputs: list[dict[str, Any]]) -> Mapping[str, str]:
        files = [
            OutputFile(
                port=o["name"],
                name=o["name"],
                size=o["size"],
                adler32=o["adler32"],
                sha256=o["sha256"],
                path=o["path"],
            )
            for o in outputs
        ]
        return dict(task_data.store_outputs(workflow_owner(row), files))

    return sink


def catalogue_sink(
    catalogue: Catalogue,
    inner: OutputSink,
    identity_for: Callable[[WorkflowRow], Any],  # an Identity or an acting-for principal
) -> OutputSink:
    """``inner``, then the stored rasters registered with provenance (best effort)."""

    def sink(row: WorkflowRow, outputs: list[dict[str, Any]]) -> Mapping[str, str]:
        stored = inner(row, outputs)
        try:
            _register(catalogue, identity_for(row), row, outputs, stored)
        except Exception as exc:  # noqa: BLE001 - the outputs are stored; never fail the workflow
            log.warning("workflow %s: outputs not catalogued: %s", row.id, exc)
        return stored

    return sink


def _register(
    catalogue: Catalogue,
    identity: Any,
    row: WorkflowRow,
    outputs: list[dict[str, Any]],
    stored: Mapping[str, str],
) -> None:
    compiled = jobs_of(row)
    jobs = {j.dag_name: j for j in compiled.jobs}
    inputs = tuple(src[len(DATASET) :] for _, src in compiled.inputs if src.startswith(DATASET))
    for out in outputs:
        location, job = stored.get(out["name"]), jobs.get(out["node"])
        if location is None or job is None:
            continue
        port = out["port"]
        prov = Provenance(
            workflow_id=row.id,
            tool=job.tool,
            parameters=dict(job.params),
            inputs=inputs,
            node=job.dag_name,
        )
        fields = Fields(
            OUTPUT_GROUP, f"{row.id}.{job.dag_name}.{port}", "RASTER", title=f"{job.tool} {port}"
        )
        try:
            catalogue.register(identity, location, fields, prov)
        except NotARaster:
            continue  # text or tabular outputs are not catalogued
        except GprocError as exc:
            log.warning("workflow %s: output %s not catalogued: %s", row.id, out["name"], exc)

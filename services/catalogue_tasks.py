"""Tasks and the catalogue: datasets as task inputs, task outputs catalogued.

Both are :class:`gproc.task_data.TaskData` decorators: each wraps another task data
(normally the gateway's, :mod:`gproc.services.gateway_tasks`) and adds one concern,
so ``build_context`` composes them when ``[catalogue] tasks`` is on:

* :class:`DatasetInputs` resolves ``dataset:<datagroup>/<dataset>`` and
  ``dataset:<catalogue id>`` references with the task owner's rights (an entry the
  owner may not see is not found), checks the dataset's type against the types
  the tool's port accepts (``[catalogue] input_types``, ``"<tool>.<port>"`` ->
  types) at RegisterTask (:meth:`TaskData.check_request`, before anything is
  staged; the error names ``inputs.<port>``), and hands the dataset's gateway
  location to the wrapped resolver.
* :class:`CatalogueOutputs` registers, after the wrapped task data stored them in
  the gateway, the outputs that are rasters (datagroup ``tasks``, dataset
  ``<task id>.<port>``) with provenance: the task, the tool, its parameters and the
  catalogue ids of its dataset inputs.

:class:`CatalogueRemovals` is the gateway's removal listener: a file deleted or renamed
through a gateway front has its entry (and those below a folder) marked missing at once,
as the next scan would.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gproc.catalogue.engines import open_engine
from gproc.catalogue.engines.base import CatalogueEngine
from gproc.catalogue.model import Dataset, Fields, NotARaster, Provenance, utcnow
from gproc.catalogue.service import DATASET_SCHEME, Catalogue
from gproc.connectors.base import Connector, ToolRequest
from gproc.connectors.registry import list_connectors
from gproc.domain import InvalidTaskRequest, OutputFile, Owner
from gproc.errors import GprocError
from gproc.security.identity import Identity, same_dn
from gproc.settings import Settings
from gproc.staging import InputResolver
from gproc.storage_gateway.gateway import RemovalListener, StorageGateway
from gproc.task_data import TaskData, TaskOwner

log = logging.getLogger("gproc.catalogue.tasks")
GATEWAY = "gateway://"
OUTPUT_GROUP = "tasks"


class DatasetInputs(TaskData):
    """Task data whose resolver understands dataset references; the rest is ``inner``'s."""

    def __init__(
        self,
        catalogue: Catalogue,
        inner: TaskData,
        input_types: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.inner = inner
        self.input_types = {k: tuple(v) for k, v in (input_types or {}).items()}

    def check_request(self, owner: Owner, request: ToolRequest) -> None:
        """Refuse at registration, before anything is staged, dataset inputs the owner
        cannot see or of a type the tool's port does not accept (``inputs.<port>``)."""
        self.inner.check_request(owner, request)
        for port, refs in request.inputs.items():
            field = f"inputs.{port}"
            for ref in _refs(refs):
                if ref.startswith(DATASET_SCHEME):
                    ds = self._resolve(_identity(owner), ref, field)
                    accepted = self.input_types.get(f"{request.tool}.{port}", ())
                    Catalogue.check_type(ds, accepted, field)

    def _resolve(self, identity: Identity, ref: str, field: str = "inputs") -> Dataset:
        try:
            return self.catalogue.resolve_input(identity, ref)
        except GprocError as exc:
            raise InvalidTaskRequest(field, f"{ref}: {exc.message}") from None

    def resolver_for(self, owner: Owner) -> InputResolver:
        inner = self.inner.resolver_for(owner)

        def resolve(ref: str, dest: Path) -> None:
            if not ref.startswith(DATASET_SCHEME):
                inner(ref, dest)
                return
            ds = self._resolve(_identity(owner), ref)
            inner(GATEWAY + ds.location, dest)

        return resolve

    def store_outputs(self, owner: TaskOwner, outputs: Sequence[OutputFile]) -> Mapping[str, str]:
        return self.inner.store_outputs(owner, outputs)

    def location(self, stored_at: str) -> str:
        return self.inner.location(stored_at)


def _identity(owner: Owner) -> Identity:
    if not isinstance(owner.credential, Identity):
        raise InvalidTaskRequest("inputs", "dataset inputs need an authenticated owner")
    return owner.credential


def _refs(refs: Any) -> list[str]:
    items = [refs] if isinstance(refs, str) else list(refs or ())
    return [r for r in items if isinstance(r, str)]


class CatalogueOutputs(TaskData):
    """Task data that catalogues the rasters ``inner`` stored in the gateway.

    ``identity_for`` names who registers them for a task's owner (for the gateway task
    data, :meth:`GatewayTaskData.output_principal`: it may read that task's folder)."""

    def __init__(
        self,
        catalogue: Catalogue,
        inner: TaskData,
        identity_for: Callable[[TaskOwner], Any],  # an Identity or an acting-for principal
    ) -> None:
        self.catalogue = catalogue
        self.inner = inner
        self.identity_for = identity_for

    def resolver_for(self, owner: Owner) -> InputResolver:
        return self.inner.resolver_for(owner)

    def check_request(self, owner: Owner, request: ToolRequest) -> None:
        self.inner.check_request(owner, request)

    def location(self, stored_at: str) -> str:
        return self.inner.location(stored_at)

    def store_outputs(self, owner: TaskOwner, outputs: Sequence[OutputFile]) -> Mapping[str, str]:
        stored = self.inner.store_outputs(owner, outputs)
        if not stored:
            return stored
        identity = self.identity_for(owner)
        provenance = self.provenance(owner, identity)
        for port, location in stored.items():
            title = f"{owner.tool} {port}"
            fields = Fields(OUTPUT_GROUP, f"{owner.task_id}.{port}", "RASTER", title=title)
            try:
                self.catalogue.register(identity, location, fields, provenance)
            except NotARaster:
                continue  # text or tabular outputs are not catalogued
            except GprocError as exc:  # the outputs are stored; cataloguing is best effort
                log.warning("task %s: output %s not catalogued: %s", owner.task_id, port, exc)
        return stored

    def provenance(self, owner: TaskOwner, identity: Any) -> Provenance:
        request: dict[str, Any] = {}
        with contextlib.suppress(ValueError, TypeError):  # best effort
            request = dict(json.loads(owner.request_json or "{}"))
        inputs: list[str] = []
        for refs in dict(request.get("inputs") or {}).values():
            for ref in _refs(refs):
                if ref.startswith(DATASET_SCHEME):
                    with contextlib.suppress(ValueError, GprocError):  # best effort
                        inputs.append(self.catalogue.resolve_input(identity, ref).id)
        return Provenance(
            task_id=owner.task_id,
            tool=owner.tool,
            parameters=dict(request.get("params") or {}),
            inputs=tuple(inputs),
        )


class CatalogueRemovals(RemovalListener):
    """Marks the entries at a removed location missing (kept for their provenance)."""

    def __init__(self, engine: CatalogueEngine) -> None:
        self.engine = engine

    def on_removed(self, location: str) -> None:
        at = self.engine.lookup(location=location)
        for ds in ([at] if at else []) + self.engine.in_area_prefix(location):
            if not ds.missing:
                self.engine.put(replace(ds, missing=True, updated=utcnow()))
                log.info("dataset %s: %s removed through the gateway", ds.id, ds.location)


def input_types(
    settings: Settings, connectors: Sequence[Connector] | None = None
) -> dict[str, tuple[str, ...]]:
    """``"<tool>.<port>"`` -> accepted dataset types: what the connectors declare
    (:attr:`InputPort.accepts`), each key ``[catalogue] input_types`` names overridden."""
    declared = {
        f"{c.name}.{p.name}": tuple(p.accepts)
        for c in (list_connectors() if connectors is None else connectors)
        for p in c.inputs
        if p.accepts
    }
    return declared | {k: tuple(v) for k, v in settings.catalogue.input_types.items()}


def catalogue_configured(settings: Settings) -> bool:
    """A catalogue database is named, or tasks use the catalogue."""
    return settings.catalogue.database_url is not None or settings.catalogue.tasks


def open_catalogue_engine(settings: Settings) -> CatalogueEngine:
    """The engine of ``[catalogue] database_url``, its schema at head (upgraded when
    ``[database] auto_upgrade``, see :mod:`gproc.migrations.catalogue`)."""
    return open_engine(settings.catalogue_database_url, auto_upgrade=settings.database.auto_upgrade)


def build_catalogue(settings: Settings, gateway: StorageGateway) -> Catalogue:
    """The catalogue of ``[catalogue]`` over ``gateway`` (admins from the settings); the
    one construction every entry point uses (services, the CLI)."""
    admins = list(settings.catalogue.admins)

    def is_admin(ident: Identity) -> bool:
        return any(same_dn(dn, ident.subject_grid) for dn in admins)

    engine = open_catalogue_engine(settings)
    return Catalogue(engine, gateway, settings.catalogue.quicklooks, is_admin=is_admin)

"""Tasks and the catalogue: datasets as task inputs, task outputs catalogued.

Both are wrappers that compose with the gateway's task data
(:mod:`gproc.services.gateway_tasks`) instead of changing it:

* :class:`DatasetInputs` resolves ``dataset:<datagroup>/<dataset>`` and
  ``dataset:<catalogue id>`` references with the task owner's rights (an entry the
  owner may not see is not found), checks the dataset's type against the types
  the tool's port accepts (``[catalogue] input_types``, ``"<tool>.<port>"`` ->
  types), and hands the dataset's gateway location to the gateway resolver.
* :class:`CatalogueOutputs` wraps the output sink: outputs stored in the gateway
  that are rasters are registered (datagroup ``tasks``, dataset
  ``<task id>.<port>``) with provenance: the task, the tool, its parameters and the
  catalogue ids of its dataset inputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gproc.catalogue.model import Fields, NotARaster, Provenance
from gproc.catalogue.service import DATASET_SCHEME, Catalogue, TypeMismatch
from gproc.domain import InvalidTaskRequest, Owner
from gproc.errors import GprocError
from gproc.security.identity import Identity
from gproc.staging import InputResolver

log = logging.getLogger("gproc.catalogue.tasks")
GATEWAY = "gateway://"
OUTPUT_GROUP = "tasks"


class DatasetInputs:
    """``resolver_for`` that understands dataset references, then delegates."""

    def __init__(
        self,
        catalogue: Catalogue,
        inner: Callable[[Owner], InputResolver],
        input_types: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.inner = inner
        self.input_types = {k: tuple(v) for k, v in (input_types or {}).items()}

    def check_request(self, owner: Owner, tool: str, inputs: Mapping[str, Any]) -> None:
        """Refuse, before registration, dataset inputs of a type the tool's port does
        not accept (and datasets the owner cannot see)."""
        identity = _identity(owner)
        for port, refs in inputs.items():
            for ref in [refs] if isinstance(refs, str) else list(refs):
                if isinstance(ref, str) and ref.startswith(DATASET_SCHEME):
                    ds = self._resolve(identity, ref)
                    try:
                        Catalogue.check_type(ds, self.input_types.get(f"{tool}.{port}", ()))
                    except TypeMismatch as exc:
                        raise InvalidTaskRequest(f"inputs.{port}", exc.message) from None

    def _resolve(self, identity: Identity, ref: str) -> Any:
        try:
            return self.catalogue.resolve_input(identity, ref)
        except GprocError as exc:
            raise InvalidTaskRequest("inputs", f"{ref}: {exc.message}") from None

    def resolver_for(self, owner: Owner) -> InputResolver:
        inner = self.inner(owner)

        def resolve(ref: str, dest: Path) -> None:
            if not ref.startswith(DATASET_SCHEME):
                inner(ref, dest)
                return
            ds = self._resolve(_identity(owner), ref)
            inner(GATEWAY + ds.location, dest)

        return resolve


def _identity(owner: Owner) -> Identity:
    if not isinstance(owner.credential, Identity):
        raise InvalidTaskRequest("inputs", "dataset inputs need an authenticated owner")
    return owner.credential


class CatalogueOutputs:
    """An output sink that catalogues what the wrapped sink stored in the gateway."""

    def __init__(
        self,
        catalogue: Catalogue,
        inner: Callable[[Any, list[dict[str, Any]]], dict[str, str]],
        owner_identity: Callable[[Any], Identity],
    ) -> None:
        self.catalogue = catalogue
        self.inner = inner
        self.owner_identity = owner_identity

    def __call__(self, row: Any, outputs: list[dict[str, Any]]) -> dict[str, str]:
        stored = self.inner(row, outputs)
        if not stored:
            return stored
        identity = self.owner_identity(row)
        provenance = self.provenance(row, identity)
        for port, location in stored.items():
            fields = Fields(OUTPUT_GROUP, f"{row.id}.{port}", "RASTER", title=f"{row.tool} {port}")
            try:
                self.catalogue.register(identity, location, fields, provenance)
            except NotARaster:
                continue  # text or tabular outputs are not catalogued
            except GprocError as exc:  # the outputs are stored; cataloguing is best effort
                log.warning("task %s: output %s not catalogued: %s", row.id, port, exc)
        return stored

    def provenance(self, row: Any, identity: Identity) -> Provenance:
        request: dict[str, Any] = {}
        with contextlib.suppress(ValueError, GprocError):  # best effort
            request = json.loads(getattr(row, "request_json", None) or "{}")
        inputs: list[str] = []
        for refs in dict(request.get("inputs") or {}).values():
            for ref in [refs] if isinstance(refs, str) else list(refs):
                if isinstance(ref, str) and ref.startswith(DATASET_SCHEME):
                    with contextlib.suppress(ValueError, GprocError):  # best effort
                        inputs.append(self.catalogue.resolve_input(identity, ref).id)
        return Provenance(
            task_id=row.id,
            tool=row.tool,
            parameters=dict(request.get("params") or {}),
            inputs=tuple(inputs),
        )

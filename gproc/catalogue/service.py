"""The catalogue's operations for an authenticated identity, over an engine and the
storage gateway.

Visibility follows the gateway: every entry records the *area* its file lives in
(a shared mount point such as ``/public`` or ``/groups/grid``, or one user's
``/private/<key>``) and a caller finds only entries of areas the gateway would let
them read. Registering, updating and removing need the right to write that area.
Files are read through the gateway with the caller's rights (any backend), copied
to a temporary file for GDAL.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from gproc.catalogue.engines.base import Areas, CatalogueEngine, Page
from gproc.catalogue.extract import quicklook_png, read_info
from gproc.catalogue.model import (
    Dataset,
    DatasetNotFound,
    Fields,
    InvalidDataset,
    NotARaster,
    Provenance,
    utcnow,
)
from gproc.catalogue.query import Query
from gproc.errors import InvalidRequest, NotAuthorised, StorageUnavailable
from gproc.security.identity import Identity
from gproc.storage_gateway import paths
from gproc.storage_gateway.access import AreaKind, Op, user_key
from gproc.storage_gateway.backends.base import (
    AlreadyExists,
    BackendUnavailable,
    PermissionDenied,
    StorageError,
)
from gproc.storage_gateway.backends.base import NotFound as StorageNotFound
from gproc.storage_gateway.gateway import StorageGateway

log = logging.getLogger("gproc.catalogue")
RASTER_SUFFIXES = (".tif", ".tiff", ".img", ".jp2", ".vrt", ".nc", ".hdf", ".dem", ".png")
_ID = re.compile(r"^[0-9a-f]{32}$")
DATASET_SCHEME = "dataset:"
QUICKLOOK_FOLDER = ".quicklooks"  # hidden: scans and listings of rasters skip it


class TypeMismatch(InvalidRequest):
    """A tool does not accept the dataset's type."""

    code = "Client.DatasetTypeMismatch"


@dataclass
class ScanReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # location -> reason


class Catalogue:
    """Catalogue operations; collaborators given at construction."""

    def __init__(
        self,
        engine: CatalogueEngine,
        gateway: StorageGateway,
        quicklooks: bool = False,
        *,
        is_admin: Callable[[Identity], bool] = lambda _i: False,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.engine = engine
        self.gateway = gateway
        self.quicklooks = bool(quicklooks)  # render one into the gateway at registration
        self.is_admin = is_admin
        self.new_id = new_id

    # -- visibility -------------------------------------------------------------------
    def visible_areas(self, identity: Identity) -> Areas:
        """Areas whose entries ``identity`` may find (None: all, for administrators)."""
        if self.is_admin(identity):
            return None
        out = set()
        for area in self.gateway.namespace.areas:
            if area.kind is AreaKind.PRIVATE:
                if area.rules.members.covers(identity):
                    out.add(f"{area.name}/{user_key(identity)}")
            elif area.rules.decide(identity, Op.READ):
                out.add(area.name)
        return frozenset(out)

    def area_of(self, location: str) -> str:
        resolved = self.gateway.namespace.resolve(location)
        if resolved is None or not resolved.rest:
            raise InvalidDataset(f"location: {location} is not a file in an area", field="location")
        if resolved.owner is not None:
            return f"{resolved.area.name}/{resolved.owner}"
        return resolved.area.name

    def _check_write(self, identity: Identity, location: str) -> None:
        resolved = self.gateway.namespace.resolve(location)
        if resolved is None:
            raise InvalidDataset(f"location: {location} is not in an area", field="location")
        if self.is_admin(identity):
            return
        decision = resolved.area.rules.decide(identity, Op.WRITE, resolved.owner)
        if not decision:
            raise NotAuthorised(
                f"cataloguing in {resolved.area.name} needs the right to write it",
                rule=decision.rule,
            )

    def _visible(self, identity: Identity, ds: Dataset) -> bool:
        areas = self.visible_areas(identity)
        return areas is None or ds.area in areas

    # -- reads ------------------------------------------------------------------------
    def search(self, identity: Identity, query: Query) -> Page:
        return self.engine.search(query, self.visible_areas(identity))

    def get(self, identity: Identity, ref: str) -> Dataset:
        """By catalogue id, ``datagroup/dataset`` or ``dataset:datagroup/dataset``."""
        ds = self._lookup(ref)
        if ds is None or not self._visible(identity, ds):
            raise DatasetNotFound(f"no dataset {ref!r}", field="dataset")
        return ds

    def _lookup(self, ref: str) -> Dataset | None:
        ref = ref.removeprefix(DATASET_SCHEME)
        if _ID.match(ref):
            try:
                return self.engine.get(ref)
            except DatasetNotFound:
                return None
        group, sep, name = ref.partition("/")
        if not sep or not group or not name:
            raise InvalidDataset(
                f"dataset: {ref!r} is neither an id nor datagroup/dataset", field="dataset"
            )
        return self.engine.lookup(name=(group, name))

    def datagroups(self, identity: Identity) -> list[tuple[str, int]]:
        return self.engine.datagroups(self.visible_areas(identity))

    # -- writes -----------------------------------------------------------------------
    def register(
        self,
        identity: Identity,
        location: str,
        fields: Fields,
        provenance: Provenance | None = None,
    ) -> Dataset:
        """Catalogue the raster at ``location`` (re-registering keeps its id)."""
        location = self._normal(location)
        fields = fields.check()
        self._check_write(identity, location)
        area = self.area_of(location)
        existing = self.engine.lookup(location=location)
        with self._local_copy(identity, location) as (local, entry_size, mtime):
            info = read_info(local)
            sums = self.gateway.checksum(identity, location)
            ds_id = existing.id if existing else self.new_id()
            quicklook = self._store_quicklook(identity, location, local)
        now = utcnow()
        ds = Dataset(
            id=ds_id,
            location=location,
            area=area,
            fields=fields,
            raster=info,
            size=entry_size,
            mtime=mtime,
            adler32=sums.adler32,
            sha256=sums.sha256,
            registered=existing.registered if existing else now,
            updated=now,
            owner=identity.subject_grid,
            quicklook=quicklook,
            provenance=provenance,
        )
        return self.engine.put(ds)

    def update(self, identity: Identity, ref: str, fields: Fields) -> Dataset:
        ds = self.get(identity, ref)
        self._check_write(identity, ds.location)
        return self.engine.put(replace(ds, fields=fields.check(), updated=utcnow()))

    def remove(self, identity: Identity, ref: str) -> Dataset:
        ds = self.get(identity, ref)
        self._check_write(identity, ds.location)
        self.engine.remove(ds.id)
        if ds.quicklook:
            with contextlib.suppress(StorageError):  # the entry is gone; the PNG is best effort
                self.gateway.delete(identity, ds.quicklook)
        return ds

    def quicklook(self, identity: Identity, ref: str) -> Iterator[bytes]:
        """The dataset's quicklook PNG, read from the gateway with ``identity``'s rights."""
        ds = self.get(identity, ref)
        if not ds.quicklook:
            raise DatasetNotFound(f"dataset {ds.name} has no quicklook", field="dataset")
        try:
            self.gateway.stat(identity, ds.quicklook)
            return self.gateway.open_read(identity, ds.quicklook)
        except StorageError as exc:
            raise _storage(exc, ds.quicklook) from None

    def scan(
        self,
        identity: Identity,
        folder: str,
        template: Fields,
        *,
        suffixes: tuple[str, ...] = RASTER_SUFFIXES,
    ) -> ScanReport:
        """Register new and changed rasters under ``folder``; mark vanished ones missing.

        Names: the given datagroup, and the file's path below ``folder`` with ``/``
        turned into ``.`` and the suffix dropped as the dataset name."""
        folder = self._normal(folder)
        self._check_write(identity, folder + "/x")
        report = ScanReport()
        known = {d.location: d for d in self.engine.in_area_prefix(folder)}
        seen = set()
        for location, size, mtime in self._walk(identity, folder):
            if not location.lower().endswith(suffixes):
                continue
            seen.add(location)
            old = known.get(location)
            if (
                old
                and not old.missing
                and (old.size, old.mtime) == (size, mtime)
                and (old.quicklook or not self.quicklooks)  # else render it now
            ):
                report.unchanged += 1
                continue
            rel = location[len(folder) + 1 :]
            name = re.sub(r"[^A-Za-z0-9_.\-]", "_", rel.rsplit(".", 1)[0].replace("/", "."))
            fields = replace(template, dataset=old.fields.dataset if old else name[:128])
            try:
                ds = self.register(identity, location, fields if not old else old.fields)
            except (NotARaster, InvalidDataset) as exc:
                report.failed[location] = exc.message
                continue
            (report.updated if old else report.added).append(ds.id)
        for location, ds in known.items():
            if location not in seen and not ds.missing:
                self.engine.put(replace(ds, missing=True, updated=utcnow()))
                report.missing.append(ds.id)
        return report

    # -- tasks ------------------------------------------------------------------------
    def resolve_input(self, identity: Identity, ref: str) -> Dataset:
        """A task input ``dataset:<datagroup>/<dataset>`` or ``dataset:<id>``, with the
        caller's rights (an entry they may not see is not found)."""
        if not ref.startswith(DATASET_SCHEME):
            raise InvalidDataset(f"inputs: {ref!r} is not a dataset reference", field="inputs")
        ds = self.get(identity, ref)
        if ds.missing:
            raise DatasetNotFound(f"dataset {ds.name}: its file was removed", field="inputs")
        return ds

    @staticmethod
    def check_type(ds: Dataset, accepted: tuple[str, ...], field: str = "inputs") -> None:
        """Refuse a dataset whose type a tool does not declare (sub-types accepted);
        ``field`` is what the error names (a task's ``inputs.<port>``)."""
        if not accepted:
            return
        t = ds.fields.type
        if not any(t == a or t.startswith(a + "/") for a in accepted):
            raise TypeMismatch(
                f"dataset {ds.name} is of type {t}; the tool accepts {', '.join(accepted)}",
                field=field,
            )

    # -- helpers ----------------------------------------------------------------------
    @staticmethod
    def _normal(path: str) -> str:
        try:
            return paths.normalise(path)
        except StorageError as exc:
            raise InvalidDataset(f"location: {exc}", field="location") from None

    def _walk(self, identity: Identity, folder: str) -> Iterator[tuple[str, int, float]]:
        try:
            entries = self.gateway.listdir(identity, folder)
        except StorageError as exc:
            raise _storage(exc, folder) from None
        for entry in sorted(entries, key=lambda e: e.name):
            path = f"{folder}/{entry.name}"
            if entry.name.startswith("."):
                continue
            if entry.is_dir:
                yield from self._walk(identity, path)
            else:
                yield path, entry.size, entry.mtime

    class _Copy:
        def __init__(self, owner: Catalogue, identity: Identity, location: str) -> None:
            self.owner, self.identity, self.location = owner, identity, location
            self.tmp: tempfile.TemporaryDirectory[str] | None = None

        def __enter__(self) -> tuple[Path, int, float]:
            gw = self.owner.gateway
            try:
                entry = gw.stat(self.identity, self.location)
                if entry.is_dir:
                    raise InvalidDataset(
                        f"location: {self.location} is a directory", field="location"
                    )
                self.tmp = tempfile.TemporaryDirectory(prefix="gproc-cat-")
                suffix = Path(self.location).suffix[:8]
                local = Path(self.tmp.name) / f"raster{suffix}"
                with local.open("wb") as fh:
                    for chunk in gw.open_read(self.identity, self.location):
                        fh.write(chunk)
            except StorageError as exc:
                self.__exit__()
                raise _storage(exc, self.location) from None
            return local, entry.size, entry.mtime

        def __exit__(self, *_exc: object) -> None:
            if self.tmp is not None:
                self.tmp.cleanup()
                self.tmp = None

    def _local_copy(self, identity: Identity, location: str) -> Catalogue._Copy:
        return Catalogue._Copy(self, identity, location)

    def _store_quicklook(self, identity: Identity, location: str, local: Path) -> str | None:
        """Render the quicklook and store it beside the raster, in the hidden folder
        ``.quicklooks`` of its directory: the same area, so the gateway's access rules
        for the raster are those of its quicklook. Best effort (a full quota, say)."""
        if not self.quicklooks:
            return None
        target = quicklook_location(location)
        try:
            png = quicklook_png(local)
            with contextlib.suppress(AlreadyExists):
                self.gateway.mkdir(identity, target.rsplit("/", 1)[0])
            self.gateway.write(identity, target, [png], overwrite=True)
        except (StorageError, NotARaster) as exc:
            log.warning("%s: no quicklook stored: %s", location, exc)
            return None
        return target


def quicklook_location(location: str) -> str:
    """Where the quicklook of the raster at ``location`` is kept in the gateway."""
    folder, _, name = location.rpartition("/")
    return f"{folder}/{QUICKLOOK_FOLDER}/{name}.png"


def _storage(exc: StorageError, path: str) -> Exception:
    if isinstance(exc, StorageNotFound):
        return DatasetNotFound(f"{path}: no such file", field="location")
    if isinstance(exc, PermissionDenied):
        return NotAuthorised(str(exc))
    if isinstance(exc, BackendUnavailable):
        return StorageUnavailable(str(exc))
    return InvalidDataset(f"location: {exc}", field="location")


def parse_acquired(text: str | None) -> datetime | None:
    from gproc.catalogue.query import parse_time

    return parse_time(text, "acquired") if text else None

"""Wire types and faults of the catalogue SOAP service (document/literal).

Wire types are not rows: :func:`info` maps a core :class:`Dataset` to ``DatasetInfo``.
Faults are the chassis's in this service's own namespace.
"""

from __future__ import annotations

from spyne import Boolean, ComplexModel, DateTime, Double, Integer, Unicode

from gproc import errors
from gproc.catalogue.model import Dataset
from gproc.services.chassis import ErrorTable, FaultSet

NS = "urn:gproc:catalogue:1"

REF = Unicode(max_len=300, min_occurs=1, nillable=False)
PATH = Unicode(max_len=4096, min_occurs=1, nillable=False)
TEXT = Unicode(max_len=1024)


def many(cls: type) -> type:
    return cls.customize(min_occurs=0, max_occurs="unbounded")  # type: ignore[attr-defined, no-any-return]


class Model(ComplexModel):
    __namespace__ = NS


class Property(Model):
    key = Unicode(max_len=64)
    value = Unicode(max_len=1024)


class DatasetFields(Model):
    datagroup = Unicode(max_len=128, min_occurs=1, nillable=False)
    dataset = Unicode(max_len=128)
    type = Unicode(max_len=160)
    vendor = TEXT
    sensor = TEXT
    acquired = DateTime
    title = TEXT
    properties = many(Property)


class Criteria(Model):
    """Structured search: every given criterion must hold."""

    bbox = Double.customize(min_occurs=0, max_occurs=4)  # west south east north
    geometry = Unicode(max_len=1 << 20)  # WKT, EPSG:4326
    spatial_op = Unicode(values=["intersects", "contains", "within"])
    type = Unicode(max_len=160)
    datagroup = Unicode(max_len=128)
    dataset = Unicode(max_len=128)
    vendor = TEXT
    sensor = TEXT
    text = Unicode(max_len=256)
    time_start = DateTime
    time_end = DateTime
    properties = many(Property)


class Provenance(Model):
    task_id = Unicode
    workflow_id = Unicode
    tool = Unicode
    parameters = Unicode  # JSON object
    inputs = many(Unicode)


class DatasetInfo(Model):
    id = Unicode
    url = Unicode
    owner = Unicode
    datagroup = Unicode
    dataset = Unicode
    type = Unicode
    vendor = Unicode
    sensor = Unicode
    acquired = DateTime
    title = Unicode
    properties = many(Property)
    footprint = Unicode
    bbox = many(Double)
    crs = Unicode
    resolution = many(Double)
    width = Integer
    height = Integer
    bands = Integer
    dtype = Unicode
    nodata = Double
    size = Integer
    adler32 = Unicode
    sha256 = Unicode
    registered = DateTime
    updated = DateTime
    provenance = Provenance
    missing = Boolean


class SearchResult(Model):
    datasets = many(DatasetInfo)
    token = Unicode


class ScanResult(Model):
    added = Integer
    updated = Integer
    unchanged = Integer
    missing = Integer
    failed = many(Unicode)  # "location: reason"


class Datagroup(Model):
    name = Unicode
    datasets = Integer


FAULTS = FaultSet(
    NS,
    "CatalogueFault",
    {
        "NotAuthorisedFault": "Client.NotAuthorised",
        "DatasetNotFoundFault": "Client.DatasetNotFound",
        "NotFoundFault": "Client.NotFound",
        "ConflictFault": "Client.Conflict",
        "QuerySyntaxFault": "Client.QuerySyntax",
        "InvalidQueryFault": "Client.InvalidQuery",
        "InvalidTokenFault": "Client.InvalidToken",
        "InvalidDatasetFault": "Client.InvalidDataset",
        "NotARasterFault": "Client.NotARaster",
        "InvalidRequestFault": "Client.InvalidRequest",
        "StorageUnavailableFault": "Server.StorageUnavailable",
    },
    module=__name__,
)
ERRORS = ErrorTable(
    FAULTS,
    {
        "Client.DatasetNotFound": FAULTS.DatasetNotFoundFault,
        errors.NotFound.code: FAULTS.NotFoundFault,
        errors.Conflict.code: FAULTS.ConflictFault,
        "Client.QuerySyntax": FAULTS.QuerySyntaxFault,
        "Client.UnknownPlace": FAULTS.QuerySyntaxFault,
        "Client.InvalidQuery": FAULTS.InvalidQueryFault,
        "Client.InvalidToken": FAULTS.InvalidTokenFault,
        "Client.InvalidDataset": FAULTS.InvalidDatasetFault,
        "Client.NotARaster": FAULTS.NotARasterFault,
        "Client.DatasetConflict": FAULTS.ConflictFault,
        errors.InvalidRequest.code: FAULTS.InvalidRequestFault,
        errors.LimitExceeded.code: FAULTS.LimitExceededFault,
        errors.NotAuthenticated.code: FAULTS.NotAuthenticatedFault,
        errors.NotAuthorised.code: FAULTS.NotAuthorisedFault,
        errors.StorageUnavailable.code: FAULTS.StorageUnavailableFault,
        errors.Internal.code: FAULTS.InternalFault,
    },
)
ALL_FAULTS = list(FAULTS.all)


def info(ds: Dataset) -> DatasetInfo:
    import json

    f, r = ds.fields, ds.raster
    prov = None
    if ds.provenance:
        p = ds.provenance
        prov = Provenance(
            task_id=p.task_id,
            workflow_id=p.workflow_id,
            tool=p.tool,
            parameters=json.dumps(p.parameters),
            inputs=list(p.inputs),
        )
    return DatasetInfo(
        id=ds.id,
        url=ds.location,
        owner=ds.owner,
        datagroup=f.datagroup,
        dataset=f.dataset,
        type=f.type,
        vendor=f.vendor,
        sensor=f.sensor,
        acquired=f.acquired,
        title=f.title,
        properties=[Property(key=k, value=v) for k, v in sorted(f.properties.items())],
        footprint=r.footprint_wkt,
        bbox=list(r.bbox),
        crs=r.crs,
        resolution=list(r.resolution),
        width=r.width,
        height=r.height,
        bands=r.bands,
        dtype=r.dtype,
        nodata=r.nodata,
        size=ds.size,
        adler32=ds.adler32,
        sha256=ds.sha256,
        registered=ds.registered,
        updated=ds.updated,
        provenance=prov,
        missing=ds.missing,
    )

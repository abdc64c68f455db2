"""The catalogue's tables (SQLAlchemy Core), shared by both engines.

Rows are not the typed :class:`~gproc.catalogue.model.Dataset`: :func:`to_row` and
:func:`from_row` map between them. Times are stored as UTC epoch seconds (floats)
so SQLite and PostgreSQL compare and sort them identically. The spatial column is
engine-specific: SQLite keeps the footprint's WKT beside an R*Tree of bounding
boxes, PostGIS adds a ``geometry`` column with a GiST index (see the engines).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gproc.catalogue.model import Dataset, Fields, Provenance, RasterInfo
from gproc.catalogue.query import NO_TIME

DATASET = "catalogue_dataset"
PROPERTY = "catalogue_property"
PLACE = "catalogue_place"


def dataset_table(metadata: MetaData, *extra: Column[Any]) -> Table:
    return Table(
        DATASET,
        metadata,
        Column("rid", Integer, primary_key=True, autoincrement=True),
        Column("id", String(32), nullable=False, unique=True),
        Column("location", String(4096), nullable=False, unique=True),
        Column("area", String(512), nullable=False, index=True),
        Column("datagroup", String(128), nullable=False),
        Column("dataset", String(128), nullable=False),
        Column("name", String(257), nullable=False),
        Column("type", String(160), nullable=False, index=True),
        Column("vendor", String(1024), index=True),
        Column("sensor", String(1024)),
        Column("title", String(1024)),
        Column("acquired", Float, nullable=False, index=True),  # NO_TIME when unknown
        Column("registered", Float, nullable=False),
        Column("updated", Float, nullable=False),
        Column("properties", Text, nullable=False),
        Column("search_text", Text, nullable=False),
        Column("crs", Text, nullable=False),
        Column("res_x", Float, nullable=False),
        Column("res_y", Float, nullable=False),
        Column("width", Integer, nullable=False),
        Column("height", Integer, nullable=False),
        Column("bands", Integer, nullable=False),
        Column("dtype", String(32), nullable=False),
        Column("nodata", Float),
        Column("driver", String(64), nullable=False),
        Column("size", Integer, nullable=False),
        Column("mtime", Float, nullable=False),
        Column("adler32", String(8), nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("owner", String(1024)),
        Column("quicklook", String(4096)),
        Column("provenance", Text),
        Column("missing", Boolean, nullable=False, default=False),
        Column("footprint_wkt", Text, nullable=False),
        Column("minx", Float, nullable=False),
        Column("miny", Float, nullable=False),
        Column("maxx", Float, nullable=False),
        Column("maxy", Float, nullable=False),
        *extra,
        UniqueConstraint("datagroup", "dataset", name="uq_catalogue_dataset_name"),
        Index("ix_catalogue_dataset_name", "name", "rid"),
        Index("ix_catalogue_dataset_acquired_rid", "acquired", "rid"),
    )


def property_table(metadata: MetaData) -> Table:
    return Table(
        PROPERTY,
        metadata,
        Column(
            "rid",
            Integer,
            ForeignKey(f"{DATASET}.rid", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("key", String(64), primary_key=True),
        Column("value", String(1024), nullable=False),
        Index("ix_catalogue_property_kv", "key", "value"),
    )


def place_table(metadata: MetaData) -> Table:
    return Table(
        PLACE,
        metadata,
        Column("pid", Integer, primary_key=True, autoincrement=True),
        Column("name", String(256), nullable=False),
        Column("key", String(256), nullable=False, index=True),  # folded name
        Column("kind", String(16), nullable=False),  # country | region | city
        Column("country", String(256), nullable=False),  # folded country name
        Column("admin", String(256), nullable=False),  # folded region name, "" if unknown
        Column("population", Integer, nullable=False),
        Column("geometry_wkt", Text, nullable=False),
        Column("source", String(64), nullable=False),
    )


DATASET_COLUMNS = frozenset(c.name for c in dataset_table(MetaData()).c)


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def to_row(ds: Dataset) -> dict[str, Any]:
    f, r = ds.fields, ds.raster
    return {
        "id": ds.id,
        "location": ds.location,
        "area": ds.area,
        "datagroup": f.datagroup,
        "dataset": f.dataset,
        "name": f.name,
        "type": f.type,
        "vendor": f.vendor,
        "sensor": f.sensor,
        "title": f.title,
        "acquired": _ts(f.acquired) if f.acquired else NO_TIME,
        "registered": _ts(ds.registered),
        "updated": _ts(ds.updated),
        "properties": json.dumps(f.properties, sort_keys=True),
        "search_text": ds.search_text(),
        "crs": r.crs,
        "res_x": r.resolution[0],
        "res_y": r.resolution[1],
        "width": r.width,
        "height": r.height,
        "bands": r.bands,
        "dtype": r.dtype,
        "nodata": r.nodata,
        "driver": r.driver,
        "size": ds.size,
        "mtime": ds.mtime,
        "adler32": ds.adler32,
        "sha256": ds.sha256,
        "owner": ds.owner,
        "quicklook": ds.quicklook,
        "provenance": json.dumps(ds.provenance.to_json()) if ds.provenance else None,
        "missing": ds.missing,
        "footprint_wkt": r.footprint_wkt,
        "minx": r.bbox[0],
        "miny": r.bbox[1],
        "maxx": r.bbox[2],
        "maxy": r.bbox[3],
    }


def from_row(row: Any) -> Dataset:
    m = row._mapping
    fields = Fields(
        datagroup=m["datagroup"],
        dataset=m["dataset"],
        type=m["type"],
        vendor=m["vendor"],
        sensor=m["sensor"],
        acquired=None if m["acquired"] == NO_TIME else _dt(m["acquired"]),
        title=m["title"],
        properties=json.loads(m["properties"]),
    )
    raster = RasterInfo(
        footprint_wkt=m["footprint_wkt"],
        bbox=(m["minx"], m["miny"], m["maxx"], m["maxy"]),
        crs=m["crs"],
        resolution=(m["res_x"], m["res_y"]),
        width=m["width"],
        height=m["height"],
        bands=m["bands"],
        dtype=m["dtype"],
        nodata=m["nodata"],
        driver=m["driver"],
    )
    return Dataset(
        id=m["id"],
        location=m["location"],
        area=m["area"],
        fields=fields,
        raster=raster,
        size=m["size"],
        mtime=m["mtime"],
        adler32=m["adler32"],
        sha256=m["sha256"],
        registered=_dt(m["registered"]),
        updated=_dt(m["updated"]),
        owner=m["owner"],
        quicklook=m["quicklook"],
        provenance=Provenance.from_json(json.loads(m["provenance"])) if m["provenance"] else None,
        missing=bool(m["missing"]),
    )

"""PostgreSQL + PostGIS: a ``geometry`` footprint column with a GiST index.

Spatial terms are exact in SQL (``ST_Intersects``/``ST_Contains``/``ST_Within``),
with the query geometry bound as a WKT parameter; the GiST index answers the
bounding-box step inside those functions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, ColumnElement, Index, Text, bindparam, func
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.types import UserDefinedType

from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.model import Dataset
from gproc.catalogue.query import Spatial, SpatialOp


class Geometry(UserDefinedType[str]):
    """A PostGIS geometry in EPSG:4326, written from WKT."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "geometry(Geometry, 4326)"

    def bind_expression(self, bindvalue: Any) -> Any:
        return func.ST_GeomFromText(bindvalue, 4326, type_=self)


class PostgisEngine(SqlEngine):
    exact_in_sql = True

    def __init__(self, url: str) -> None:
        # no server-side prepared statements: a generic plan cannot see how selective the
        # query geometry is and walks the name index instead of the GiST index
        engine = sa_create_engine(
            url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            connect_args={"prepare_threshold": None},
        )
        # searches: autocommit and no pre-ping, so a search is one round trip, not four
        # (ping, BEGIN, SELECT, ROLLBACK); a dead pooled connection is retried once
        reader = sa_create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_size=5,
            max_overflow=10,
            connect_args={"prepare_threshold": None},
        )
        footprint = Column("footprint", Geometry(), nullable=False)
        super().__init__(engine, [footprint], reader)
        Index("ix_catalogue_dataset_footprint", self.ds.c.footprint, postgresql_using="gist")

    def _row(self, ds: Dataset) -> dict[str, Any]:
        row = super()._row(ds)
        row["footprint"] = ds.raster.footprint_wkt
        return row

    def spatial(self, term: Spatial, positive: bool, t: Any) -> ColumnElement[bool]:
        return self._test(term.op, t, func.ST_GeomFromText(term.geometry_wkt, 4326))

    def spatial_template(self, op: SpatialOp, t: Any) -> ColumnElement[bool]:
        return self._test(op, t, func.ST_GeomFromText(bindparam("geometry", type_=Text), 4326))

    def spatial_params(self, term: Spatial) -> dict[str, Any]:
        return {"geometry": term.geometry_wkt}

    @staticmethod
    def _test(op: SpatialOp, t: Any, geom: Any) -> ColumnElement[bool]:
        fp = t.c.footprint
        if op is SpatialOp.CONTAINS:
            return func.ST_Contains(fp, geom)  # type: ignore[no-any-return]
        if op is SpatialOp.WITHIN:
            return func.ST_Within(fp, geom)  # type: ignore[no-any-return]
        return func.ST_Intersects(fp, geom)  # type: ignore[no-any-return]

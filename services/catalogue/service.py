"""The catalogue SOAP service: a thin file of operations over
:class:`gproc.catalogue.service.Catalogue`. Every operation authenticates the caller
from the TLS identity and acts with their rights; errors become declared faults
through the service's one error table (``types.ERRORS``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spyne import Boolean, Integer, Unicode, rpc

from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.gql import parse_gql
from gproc.catalogue.llql import parse_llql
from gproc.catalogue.model import Fields
from gproc.catalogue.query import (
    And,
    Eq,
    Expr,
    InvalidQuery,
    Prop,
    Query,
    SortKey,
    Spatial,
    SpatialOp,
    Text,
    TimeRange,
)
from gproc.catalogue.service import Catalogue
from gproc.services.catalogue import types as w
from gproc.services.chassis import FaultingService, identity_of

_F = w.ALL_FAULTS
OPERATIONS = (
    "SearchDatasets",
    "GetDataset",
    "RegisterDataset",
    "UpdateDataset",
    "RemoveDataset",
    "ScanArea",
    "ListDatagroups",
)


def _parts(ctx: Any) -> tuple[Catalogue, Gazetteer]:
    return ctx.app.catalogue, ctx.app.gazetteer


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fields_of(f: w.DatasetFields | None, dataset: str | None = None) -> Fields:
    if f is None:
        raise InvalidQuery("fields: required", field="fields")
    props = {p.key: p.value or "" for p in _items(f.properties) if p.key}
    return Fields(
        f.datagroup,
        f.dataset or dataset or "",
        (f.type or "RASTER").upper(),
        f.vendor,
        f.sensor,
        _utc(f.acquired),
        f.title,
        props,
    )


def _items(value: Any) -> list[Any]:
    return list(value or [])


def criteria_plan(c: w.Criteria) -> Expr | None:
    """The plan of a structured search (every criterion ANDed)."""
    terms: list[Expr] = []
    op = SpatialOp(c.spatial_op or "intersects")
    if c.bbox:
        if len(c.bbox) != 4:
            raise InvalidQuery("bbox: west, south, east, north", field="bbox")
        west, south, east, north = (float(v) for v in c.bbox)
        terms.append(Spatial.bbox(west, south, east, north, op))
    if c.geometry:
        terms.append(Spatial.of(c.geometry, op))
    for name in ("type", "datagroup", "dataset", "vendor", "sensor"):
        value = getattr(c, name)
        if value:
            terms.append(Eq(name, value.upper() if name == "type" else value))  # type: ignore[arg-type]
    if c.text:
        terms.append(Text(c.text))
    if c.time_start or c.time_end:
        terms.append(TimeRange(_utc(c.time_start), _utc(c.time_end)))
    terms += [Prop(p.key, p.value or "") for p in _items(c.properties) if p.key]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else And(tuple(terms))


class CatalogueService(FaultingService):
    """GDIS: find datasets by place, type and vendor; register and scan them."""

    ERRORS = w.ERRORS

    @rpc(
        Unicode(max_len=4096),
        Unicode(max_len=16384),
        w.Criteria,
        Unicode(values=[k.value for k in SortKey]),
        Boolean,
        Integer(ge=1, le=1000),
        Unicode(max_len=512),
        _returns=w.SearchResult,
        _out_variable_name="result",
        _throws=_F,
    )
    def SearchDatasets(  # noqa: N802
        ctx: Any,  # noqa: N805
        gql: str | None,
        llql: str | None,
        criteria: w.Criteria | None,
        sort: str | None,
        descending: bool | None,
        limit: int | None,
        token: str | None,
    ) -> w.SearchResult:
        cat, gaz = _parts(ctx)
        who = identity_of(ctx, w.ERRORS)
        given = [x is not None for x in (gql, llql, criteria)]
        if sum(given) > 1:
            raise InvalidQuery("query: give one of gql, llql, criteria", field="query")
        select: tuple[str, ...] = ()
        if llql is not None:
            sel = parse_llql(llql, gaz)
            where, select = sel.where, sel.select
        elif criteria is not None:
            where = criteria_plan(criteria)
        else:
            where = parse_gql(gql or "", gaz)
        query = Query(where, SortKey(sort or "name"), bool(descending), limit or 100, token, select)
        page = cat.search(who, query)
        return w.SearchResult(datasets=[w.info(d) for d in page.items], token=page.token)

    @rpc(w.REF, _returns=w.DatasetInfo, _out_variable_name="dataset", _throws=_F)
    def GetDataset(ctx: Any, ref: str) -> w.DatasetInfo:  # noqa: N802,N805
        cat, _ = _parts(ctx)
        return w.info(cat.get(identity_of(ctx, w.ERRORS), ref))

    @rpc(w.PATH, w.DatasetFields, _returns=w.DatasetInfo, _out_variable_name="dataset", _throws=_F)
    def RegisterDataset(ctx: Any, location: str, fields: w.DatasetFields) -> w.DatasetInfo:  # noqa: N802,N805
        cat, _ = _parts(ctx)
        stem = location.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        ds = cat.register(identity_of(ctx, w.ERRORS), location, fields_of(fields, stem))
        return w.info(ds)

    @rpc(w.REF, w.DatasetFields, _returns=w.DatasetInfo, _out_variable_name="dataset", _throws=_F)
    def UpdateDataset(ctx: Any, ref: str, fields: w.DatasetFields) -> w.DatasetInfo:  # noqa: N802,N805
        cat, _ = _parts(ctx)
        return w.info(cat.update(identity_of(ctx, w.ERRORS), ref, fields_of(fields)))

    @rpc(w.REF, _returns=Unicode, _out_variable_name="id", _throws=_F)
    def RemoveDataset(ctx: Any, ref: str) -> str:  # noqa: N802,N805
        cat, _ = _parts(ctx)
        return cat.remove(identity_of(ctx, w.ERRORS), ref).id

    @rpc(w.PATH, w.DatasetFields, _returns=w.ScanResult, _out_variable_name="result", _throws=_F)
    def ScanArea(ctx: Any, folder: str, fields: w.DatasetFields) -> w.ScanResult:  # noqa: N802,N805
        cat, _ = _parts(ctx)
        report = cat.scan(identity_of(ctx, w.ERRORS), folder, fields_of(fields, "_"))
        return w.ScanResult(
            added=len(report.added),
            updated=len(report.updated),
            unchanged=report.unchanged,
            missing=len(report.missing),
            failed=[f"{k}: {v}" for k, v in sorted(report.failed.items())],
        )

    @rpc(_returns=w.many(w.Datagroup), _out_variable_name="datagroup", _throws=_F)
    def ListDatagroups(ctx: Any) -> list[w.Datagroup]:  # noqa: N802,N805
        cat, _ = _parts(ctx)
        groups = cat.datagroups(identity_of(ctx, w.ERRORS))
        return [w.Datagroup(name=n, datasets=c) for n, c in groups]

"""The map and the catalogue: footprints as GeoJSON (from the catalogue service's
SearchDatasets, by GQL and/or a drawn box), dataset details, quicklooks (the
catalogue's STAC front) and the user's gateway area."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import mapping
from werkzeug.wrappers import Response

from gproc.errors import InvalidRequest, NotFound
from gproc.services.portal.app import Ctx
from gproc.services.portal.forms import parse_bbox
from gproc.storage_gateway.access import user_key

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
MAX_RESULTS = 500


def map_page(ctx: Ctx) -> Response:
    return ctx.render("map.html", gql=ctx.request.args.get("gql", ""))


def search_query(gql: str, bbox: str) -> str:
    """One GQL query: the user's, ANDed with the drawn box (``bbox:w,s,e,n``)."""
    gql = gql.strip()
    if len(gql) > 4000:
        raise InvalidRequest("query: at most 4000 characters", field="gql")
    parts = [f"({gql})"] if gql else []
    if bbox.strip():
        box = parse_bbox(bbox)
        if box is None:
            raise InvalidRequest("box: west,south,east,north in degrees", field="bbox")
        parts.append("bbox:" + ",".join(f"{v:.6f}" for v in box))
    return " ".join(parts)


def feature(d: Any) -> dict[str, Any] | None:
    """A GeoJSON feature of a zeep ``DatasetInfo`` (None without a footprint)."""
    try:
        geometry = mapping(shapely_wkt.loads(d.footprint)) if d.footprint else None
    except (ShapelyError, ValueError):
        geometry = None
    if geometry is None:
        return None
    ref = f"{d.datagroup}/{d.dataset}"
    return {
        "type": "Feature",
        "id": d.id,
        "geometry": geometry,
        "bbox": list(d.bbox or []),
        "properties": {
            "ref": ref,
            "datagroup": d.datagroup,
            "dataset": d.dataset,
            "title": d.title,
            "type": d.type,
            "vendor": d.vendor,
            "acquired": d.acquired.isoformat() if d.acquired else None,
            "url": d.url,
            "quicklook": quicklook_url(d.datagroup, d.dataset),
            "details": f"/datasets/{quote(ref)}",
        },
    }


def quicklook_url(datagroup: str, dataset: str) -> str:
    return f"/quicklook/{quote(datagroup)}/{quote(dataset)}.png"


def search_api(ctx: Ctx) -> Response:
    args = ctx.request.args
    query = search_query(args.get("gql", ""), args.get("bbox", ""))
    result = ctx.api.call("catalogue", "SearchDatasets", gql=query, limit=MAX_RESULTS)
    datasets = list(result.datasets or []) if result is not None else []
    features = [f for f in (feature(d) for d in datasets) if f is not None]
    return ctx.json({"type": "FeatureCollection", "features": features, "query": query})


def dataset_page(ctx: Ctx) -> Response:
    ref = ctx.args["ref"]
    d = ctx.api.call("catalogue", "GetDataset", ref)
    return ctx.render("dataset.html", d=d, feature=feature(d))


def dataset_api(ctx: Ctx) -> Response:
    d = ctx.api.call("catalogue", "GetDataset", ctx.args["ref"])
    return ctx.json(feature(d))


def quicklook(ctx: Ctx) -> Response:
    group, name = ctx.args["group"], ctx.args["name"]
    if not (NAME.match(group) and NAME.match(name)):
        raise NotFound("no such dataset")
    stac = ctx.portal.clients.endpoints.stac
    if not stac:
        raise NotFound("no quicklooks here (no STAC front configured)")
    url = f"{stac.rstrip('/')}/collections/{group}/items/{name}/quicklook.png"
    resp = ctx.api.get(url)
    if resp.status_code != 200 or not resp.headers.get("Content-Type", "").startswith("image/"):
        raise NotFound("no quicklook")
    out = Response(resp.content, mimetype="image/png")
    out.headers["Cache-Control"] = "private, max-age=300"
    return out


@dataclass(frozen=True)
class _Dn:
    """The one thing the gateway's area naming reads of a principal: its DN."""

    subject_grid: str


def home_of(ctx: Ctx) -> str:
    """The user's private gateway area (``/private/<user key>``)."""
    assert ctx.session is not None
    return f"/private/{user_key(_Dn(ctx.session.dn))}"  # type: ignore[arg-type]  # reads the DN


def gateway_list_api(ctx: Ctx) -> Response:
    """A folder of the user's gateway area (JSON listing), to pick task inputs."""
    path = ctx.request.args.get("path") or home_of(ctx)
    if not path.startswith("/") or ".." in path.split("/") or len(path) > 1024:
        raise InvalidRequest("path: an absolute gateway path", field="path")
    resp = ctx.api.gateway_get(quote(path))
    with resp:
        if resp.status_code != 200:
            raise NotFound(f"{path}: not found or not readable")
        try:
            body = resp.json()
        except ValueError:
            raise InvalidRequest(f"{path}: not a folder", field="path") from None
    return ctx.json(body)


ROUTES = [
    ("/map", ["GET"], map_page, True),
    ("/api/datasets", ["GET"], search_api, True),
    ("/api/datasets/<path:ref>", ["GET"], dataset_api, True),
    ("/datasets/<path:ref>", ["GET"], dataset_page, True),
    ("/quicklook/<group>/<name>.png", ["GET"], quicklook, True),
    ("/api/gateway", ["GET"], gateway_list_api, True),
]

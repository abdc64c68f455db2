"""A read-only STAC API view of the catalogue (STAC 1.0.0, STAC API core,
collections, features and item search), for stock STAC clients and map tools.

Collections are datagroups, items are datasets, with the caller's visibility (the
TLS identity, as every front): a collection or item the caller cannot see is 404.
``/search`` (GET or POST) takes ``bbox``, ``intersects`` (GeoJSON), ``datetime``
(an instant or ``start/end`` with ``..`` for an open end), ``collections``,
``ids``, ``limit``, ``token`` (the ``next`` link) and ``q`` (a GQL query, ANDed).
Items link their gateway location as the ``data`` asset and their quicklook (kept in
the gateway beside the raster) as ``thumbnail``: ``asset_base`` + the gateway path,
``asset_base`` being the gateway's HTTPS front (``[catalogue] gateway_url``), so
both are fetched under the gateway's access rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlencode

from shapely import wkt as shapely_wkt
from shapely.errors import ShapelyError
from shapely.geometry import mapping, shape

from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.gql import parse_gql
from gproc.catalogue.model import Dataset, DatasetNotFound
from gproc.catalogue.query import (
    And,
    Eq,
    Expr,
    InvalidQuery,
    Or,
    Query,
    SortKey,
    Spatial,
    TimeRange,
    parse_time,
)
from gproc.catalogue.service import Catalogue
from gproc.errors import GprocError
from gproc.security.identity import Identity
from gproc.security.wsgi_auth import ENV_IDENTITY

STAC_VERSION = "1.0.0"
CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
MAX_BODY = 1 << 20
Start = Callable[[str, list[tuple[str, str]]], Any]


class HttpError(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class StacApp:
    """The WSGI application (wrap it in ``gproc.security.tls.make_server``)."""

    def __init__(
        self,
        catalogue: Catalogue,
        gazetteer: Gazetteer | None = None,
        *,
        asset_base: str = "gateway://",
    ) -> None:
        self.cat = catalogue
        self.gazetteer = gazetteer
        self.asset_base = asset_base.rstrip("/")

    def __call__(self, environ: dict[str, Any], start: Start) -> Iterable[bytes]:
        try:
            who = environ.get(ENV_IDENTITY)
            if not isinstance(who, Identity):
                raise HttpError("401 Unauthorized", "a valid client credential is needed")
            base = self._base(environ)
            status, body, ctype = self.route(environ, who, base)
        except HttpError as exc:
            status, body, ctype = (
                exc.status,
                _json({"code": exc.status, "description": str(exc)}),
                "application/json",
            )
        except GprocError as exc:
            code = "404 Not Found" if isinstance(exc, DatasetNotFound) else "400 Bad Request"
            status, body, ctype = (
                code,
                _json({"code": exc.code, "description": str(exc)}),
                "application/json",
            )
        start(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]

    @staticmethod
    def _base(environ: dict[str, Any]) -> str:
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        return f"{environ.get('wsgi.url_scheme', 'https')}://{host}"

    # -- routing ------------------------------------------------------------------------
    def route(self, env: dict[str, Any], who: Identity, base: str) -> tuple[str, bytes, str]:
        method = env.get("REQUEST_METHOD", "GET")
        parts = [p for p in env.get("PATH_INFO", "/").split("/") if p]
        ok = "200 OK"
        if method not in ("GET", "POST") or (method == "POST" and parts != ["search"]):
            raise HttpError("405 Method Not Allowed", f"{method} not allowed here")
        if not parts:
            return ok, _json(self.landing(base)), "application/json"
        if parts == ["conformance"]:
            return ok, _json({"conformsTo": CONFORMS}), "application/json"
        if parts == ["search"]:
            params = self._params(env)
            return ok, _json(self.search(who, base, params, method)), "application/geo+json"
        if parts[0] == "collections":
            return self._collections(env, who, base, parts[1:])
        raise HttpError("404 Not Found", "no such resource")

    def _collections(
        self, env: dict[str, Any], who: Identity, base: str, rest: list[str]
    ) -> tuple[str, bytes, str]:
        groups = dict(self.cat.datagroups(who))
        if not rest:
            cols = [self.collection(base, g, n) for g, n in groups.items()]
            links = [_link("self", f"{base}/collections"), _link("root", f"{base}/")]
            return "200 OK", _json({"collections": cols, "links": links}), "application/json"
        name = rest[0]
        if name not in groups:
            raise HttpError("404 Not Found", f"no collection {name!r}")
        if len(rest) == 1:
            return "200 OK", _json(self.collection(base, name, groups[name])), "application/json"
        if rest[1] != "items" or len(rest) > 4:
            raise HttpError("404 Not Found", "no such resource")
        if len(rest) == 2:
            params = self._params(env)
            params["collections"] = [name]
            body = self.search(who, base, params, "GET", path=f"/collections/{name}/items")
            return "200 OK", _json(body), "application/geo+json"
        ds = self.cat.get(who, f"{name}/{rest[2]}")
        if len(rest) == 4:
            if rest[3] != "quicklook.png" or not ds.quicklook:
                raise HttpError("404 Not Found", "no quicklook")
            # read from the gateway with the caller's rights (a convenience; the item's
            # thumbnail asset links the gateway itself)
            return "200 OK", b"".join(self.cat.quicklook(who, ds.id)), "image/png"
        return "200 OK", _json(self.item(base, ds)), "application/geo+json"

    # -- documents ------------------------------------------------------------------------
    def landing(self, base: str) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "stac_version": STAC_VERSION,
            "id": "gproc-gdis",
            "title": "gproc GDIS catalogue",
            "description": "Rasters in the gproc data gateway, by datagroup",
            "conformsTo": CONFORMS,
            "links": [
                _link("self", f"{base}/"),
                _link("root", f"{base}/"),
                _link("conformance", f"{base}/conformance"),
                _link("data", f"{base}/collections"),
                _link("search", f"{base}/search", "application/geo+json", method="GET"),
                _link("search", f"{base}/search", "application/geo+json", method="POST"),
            ],
        }

    def collection(self, base: str, name: str, count: int) -> dict[str, Any]:
        return {
            "type": "Collection",
            "stac_version": STAC_VERSION,
            "id": name,
            "description": f"datagroup {name} ({count} datasets)",
            "license": "proprietary",
            "extent": {
                "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                "temporal": {"interval": [[None, None]]},
            },
            "links": [
                _link("self", f"{base}/collections/{name}"),
                _link("root", f"{base}/"),
                _link("parent", f"{base}/"),
                _link("items", f"{base}/collections/{name}/items", "application/geo+json"),
            ],
        }

    def item(self, base: str, ds: Dataset) -> dict[str, Any]:
        f, r = ds.fields, ds.raster
        when = f.acquired or ds.registered
        props: dict[str, Any] = {
            "datetime": when.isoformat().replace("+00:00", "Z"),
            "gdis:type": f.type,
            "gdis:id": ds.id,
            "proj:code": r.crs if r.crs.startswith("EPSG:") else None,
            "proj:shape": [r.height, r.width],
        }
        for key, value in (
            ("constellation", f.vendor),
            ("instruments", f.sensor),
            ("title", f.title),
        ):
            if value:
                props[key] = [value] if key == "instruments" else value
        props.update({f"gdis:{k}": v for k, v in f.properties.items()})
        href = f"{base}/collections/{f.datagroup}/items/{f.dataset}"
        assets: dict[str, Any] = {
            "data": {
                "href": self.asset_base + ds.location,
                "type": "image/tiff",
                "roles": ["data"],
                "file:checksum": ds.sha256,
            },
        }
        if ds.quicklook:
            assets["thumbnail"] = {  # in the gateway, under its access rules
                "href": self.asset_base + ds.quicklook,
                "type": "image/png",
                "roles": ["thumbnail"],
            }
        return {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "id": f.dataset,
            "collection": f.datagroup,
            "geometry": mapping(shapely_wkt.loads(r.footprint_wkt)),
            "bbox": list(r.bbox),
            "properties": props,
            "assets": assets,
            "links": [
                _link("self", href, "application/geo+json"),
                _link("collection", f"{base}/collections/{f.datagroup}"),
                _link("parent", f"{base}/collections/{f.datagroup}"),
                _link("root", f"{base}/"),
            ],
        }

    # -- search ---------------------------------------------------------------------------
    def _params(self, env: dict[str, Any]) -> dict[str, Any]:
        if env.get("REQUEST_METHOD") == "POST":
            size = int(env.get("CONTENT_LENGTH") or 0)
            if size > MAX_BODY:
                raise HttpError("413 Payload Too Large", "search body too large")
            try:
                body = json.loads(env["wsgi.input"].read(size) or b"{}")
            except ValueError:
                raise HttpError("400 Bad Request", "search body is not JSON") from None
            if not isinstance(body, dict):
                raise HttpError("400 Bad Request", "search body must be an object")
            return body
        raw = parse_qs(env.get("QUERY_STRING", ""), keep_blank_values=False)
        out: dict[str, Any] = {k: v[-1] for k, v in raw.items()}
        for key in ("collections", "ids", "bbox"):
            if key in out:
                out[key] = out[key].split(",")
        if "intersects" in out:
            out["intersects"] = _loads(out["intersects"], "intersects")
        return out

    def search(
        self, who: Identity, base: str, params: dict[str, Any], method: str, path: str = "/search"
    ) -> dict[str, Any]:
        terms: list[Expr] = []
        if params.get("bbox") is not None:
            bbox = _floats(params["bbox"])
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            if len(bbox) != 4:
                raise InvalidQuery("bbox: four or six numbers", field="bbox")
            terms.append(Spatial.bbox(bbox[0], bbox[1], bbox[2], bbox[3]))
        if params.get("intersects") is not None:
            try:
                terms.append(Spatial.of(shape(params["intersects"])))
            except (ShapelyError, ValueError, TypeError, KeyError, AttributeError):
                raise InvalidQuery(
                    "intersects: not a GeoJSON geometry", field="intersects"
                ) from None
        if params.get("datetime"):
            terms.append(_datetime(str(params["datetime"])))
        for key, field in (("collections", "datagroup"), ("ids", "dataset")):
            values = [str(v) for v in params.get(key) or []]
            if values:
                eqs: list[Expr] = [Eq(field, v) for v in values]  # type: ignore[arg-type]
                terms.append(eqs[0] if len(eqs) == 1 else Or(tuple(eqs)))
        if params.get("q"):
            plan = parse_gql(str(params["q"]), self.gazetteer)
            if plan is not None:
                terms.append(plan)
        try:
            limit = int(params.get("limit") or 10)
        except (TypeError, ValueError):
            raise InvalidQuery("limit: an integer", field="limit") from None
        where = None if not terms else terms[0] if len(terms) == 1 else And(tuple(terms))
        token = params.get("token")
        page = self.cat.search(who, Query(where, SortKey.NAME, False, limit, token or None))
        links = [_link("root", f"{base}/")]
        if page.token:
            if method == "POST":
                nxt = _link("next", f"{base}{path}", "application/geo+json", method="POST")
                nxt["body"] = {**params, "token": page.token}
                nxt["merge"] = False
            else:
                query = {
                    k: ",".join(map(str, v)) if isinstance(v, list) else v
                    for k, v in params.items()
                    if k != "intersects"
                }
                if "intersects" in params:
                    query["intersects"] = json.dumps(params["intersects"])
                query["token"] = page.token
                nxt = _link("next", f"{base}{path}?{urlencode(query)}", "application/geo+json")
            links.append(nxt)
        return {
            "type": "FeatureCollection",
            "features": [self.item(base, d) for d in page.items],
            "links": links,
            "numberReturned": len(page.items),
        }


def _datetime(text: str) -> TimeRange:
    if "/" not in text:
        t = parse_time(text, "datetime")
        return TimeRange(t, t)
    lo, _, hi = text.partition("/")
    start = None if lo in ("", "..") else parse_time(lo, "datetime")
    end = None if hi in ("", "..") else parse_time(hi, "datetime")
    return TimeRange(start, end)


def _floats(values: Any) -> list[float]:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidQuery("bbox: numbers", field="bbox") from None


def _loads(text: str, field: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise InvalidQuery(f"{field}: not JSON", field=field) from None


def _link(rel: str, href: str, type_: str = "application/json", **extra: Any) -> dict[str, Any]:
    return {"rel": rel, "href": href, "type": type_, **extra}


def _json(doc: Any) -> bytes:
    return json.dumps(doc, default=str).encode("utf-8")

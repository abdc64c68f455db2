"""Results on the map and as downloads.

A raster result is shown through the catalogue, like any dataset: the processing
service catalogues task outputs itself (``tasks/<task id>.<port>``) when its
``[catalogue] tasks`` is on; otherwise, and for workflow outputs, the portal
registers the stored output with the catalogue service (datagroup ``portal``),
first writing an inline output into the user's gateway area. The map layer is the
catalogue's footprint and quicklook; the inputs the portal recorded at submission
are shown beside it. Downloads stream from the gateway with the user's rights.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from werkzeug.wrappers import Response

from gproc.errors import NotFound
from gproc.services.portal.app import Ctx
from gproc.services.portal.clients import ServiceRefused
from gproc.services.portal.views_data import feature, home_of

GROUP = "portal"
RASTER = re.compile(r"\.(tif|tiff)$", re.I)
SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")
SCHEME = "gateway://"


def gateway_path(ctx: Ctx, location: str | None) -> str | None:
    """The gateway path of an output location (``gateway:///p`` or the gateway URL)."""
    if not location:
        return None
    if location.startswith(SCHEME):
        return location[len(SCHEME) :]
    base = ctx.portal.clients.endpoints.gateway.rstrip("/")
    if location.startswith(base + "/"):
        return location[len(base) :]
    return None


def _find(ctx: Ctx, ref: str) -> Any | None:
    try:
        return ctx.api.call("catalogue", "GetDataset", ref)
    except ServiceRefused as err:
        if err.service_code in ("Client.DatasetNotFound", "Client.NotFound"):
            return None
        raise


def _register(ctx: Ctx, path: str, name: str) -> Any:
    fields = {"datagroup": GROUP, "dataset": name, "type": "RASTER", "title": name}
    try:
        return ctx.api.call("catalogue", "RegisterDataset", path, fields)
    except ServiceRefused as err:
        if err.service_code == "Client.Conflict":  # registered meanwhile (another poll)
            return _find(ctx, f"{GROUP}/{name}")
        raise


def result_layer(ctx: Ctx, owner_id: str, output: Any, catalogued: str | None) -> Any | None:
    """The catalogue entry of one raster output, registering it when needed."""
    name = SAFE_NAME.sub("-", f"{owner_id}.{output.name}")[:128]
    for ref in (catalogued, f"{GROUP}/{name}"):
        if ref and (found := _find(ctx, ref)) is not None:
            return found
    path = gateway_path(ctx, output.location)
    if path is None and output.content:
        folder = f"{home_of(ctx)}/portal-results"
        ctx.api.gateway_mkdir(folder)
        path = f"{folder}/{name}"
        ctx.api.gateway_put(path, _bytes(output.content))
    if path is None:
        return None
    return _register(ctx, path, name)


def _bytes(content: Any) -> bytes:
    return b"".join(content) if isinstance(content, list | tuple) else bytes(content)


def layers(ctx: Ctx, owner_id: str, outputs: Iterable[Any], tasks_group: bool) -> list[Any]:
    """GeoJSON features: each raster result (kind ``result``) and the recorded inputs."""
    out: list[Any] = []
    for o in outputs:
        if not RASTER.search(o.name or ""):
            continue
        catalogued = f"tasks/{owner_id}.{o.port}" if tasks_group and o.port else None
        found = result_layer(ctx, owner_id, o, catalogued)
        if found is not None and (f := feature(found)) is not None:
            f["properties"]["kind"] = "result"
            f["properties"]["output"] = o.name
            out.append(f)
    assert ctx.session is not None
    for ref in ctx.portal.submissions.inputs(owner_id, ctx.session.dn):
        found = _find(ctx, ref)
        if found is not None and (f := feature(found)) is not None:
            f["properties"]["kind"] = "input"
            out.append(f)
    return out


def task_layers(ctx: Ctx, task_id: str, outputs: Iterable[Any]) -> list[Any]:
    return layers(ctx, task_id, outputs, tasks_group=True)


def download(ctx: Ctx, name: str, location: str | None, content: Any) -> Response:
    """An output as an attachment: inline bytes, or streamed from the gateway."""
    filename = SAFE_NAME.sub("_", name)[:128] or "output"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if content:
        return Response(_bytes(content), mimetype="application/octet-stream", headers=headers)
    path = gateway_path(ctx, location)
    if path is None:
        raise NotFound("this output has no location")
    resp = ctx.api.gateway_get(path)
    if resp.status_code != 200:
        resp.close()
        raise NotFound("the output is not in the gateway (any more)")

    def body() -> Iterator[bytes]:
        with resp:
            yield from resp.iter_content(1 << 16)

    if resp.headers.get("Content-Length"):
        headers["Content-Length"] = resp.headers["Content-Length"]
    return Response(body(), mimetype="application/octet-stream", headers=headers)

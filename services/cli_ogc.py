"""``gproc ogc serve``: the OGC fronts (OGC API - Processes; WPS 2.0 and 1.0.0 at
``/wps``) over HTTPS with client proxies.

It serves the same core, registry and policy as ``gproc serve`` (TLS files, CA
directory, VOMS trust and policy come from ``[service]``); options override the
``[ogc]`` settings. The tracker runs in the same process unless ``--no-tracker``
(leave it off when ``gproc serve`` runs one on the same registry).
"""

from __future__ import annotations

from typing import Any

import click

from gproc.app import build_tracker
from gproc.security.tls import TLSConfig
from gproc.services.chassis import serve
from gproc.services.ogc.api_processes import ACCESS_LOGGER, LOGGERS, make_ogc_server
from gproc.services.soap.app import build_context, build_validator
from gproc.settings import get_settings

OVERRIDES = {k: f"ogc.{k}" for k in ("host", "port", "threads")}
OVERRIDES["tracker"] = "service.run_tracker"


@click.group("ogc")
def ogc_group() -> None:
    """OGC fronts (OGC API - Processes, WPS 2.0, WPS 1.0.0)."""


@ogc_group.command("serve")
@click.option("--host", help="Address to listen on [ogc.host].")
@click.option("--port", type=int, help="Port (0: any free port) [ogc.port].")
@click.option("--threads", type=int, help="Worker threads [ogc.threads].")
@click.option("--tracker/--no-tracker", default=None, help="Run the tracker in-process.")
def serve_cmd(**options: Any) -> None:
    """Serve OGC API - Processes (landing page at https://HOST:PORT/) and WPS (/wps)."""
    settings = serve.apply_overrides(get_settings(), options, OVERRIDES)
    serve.require(settings, "service.cert", "service.key", "service.ca_dir")
    svc = settings.service
    serve.json_logging(LOGGERS, access=[ACCESS_LOGGER])
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator)
    tls = TLSConfig(svc.cert, svc.key, svc.ca_dir)  # type: ignore[arg-type]
    server = make_ogc_server(gp, settings.ogc, validator, tls)
    parts: list[serve.Runnable] = [server]
    if svc.run_tracker:
        parts.append(build_tracker(gp.core, settings))
    serve.run(
        parts,
        banner=lambda: (
            f"gproc ogc: serving {server.url}/ (OpenAPI: {server.url}/api, WPS: {server.url}/wps)"
        ),
        name="gproc ogc",
        cleanup=[gp.core.registry.close],
    )

"""``gproc serve``: the SOAP processing service over HTTPS with client proxies.

Options override the ``[service]`` settings (TOML file or ``GPROC_SERVICE__*``).
The tracker runs in the same process on its own thread unless ``--no-tracker``;
with ``[myproxy] host`` set, so does the renewer of delegated proxies.
SIGTERM or SIGINT stop accepting, let running calls finish, stop the tracker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gproc.app import build_task_deliverer, build_tracker
from gproc.leader import LEADER_LOGGER
from gproc.security.tls import TLSConfig
from gproc.services.chassis import serve
from gproc.services.renewal import build_renewer
from gproc.services.soap.app import (
    ACCESS_LOGGER,
    LOGGERS,
    build_context,
    build_validator,
    make_soap_server,
)
from gproc.settings import get_settings

_PATH = click.Path(path_type=Path)
OVERRIDES = {
    k: f"service.{k}"
    for k in ("host", "port", "cert", "key", "ca_dir", "vomsdir", "policy", "threads")
}
OVERRIDES["tracker"] = "service.run_tracker"


@click.command("serve")
@click.option("--host", help="Address to listen on [service.host].")
@click.option("--port", type=int, help="Port (0: any free port) [service.port].")
@click.option("--cert", type=_PATH, help="Host certificate PEM [service.cert].")
@click.option("--key", type=_PATH, help="Host key PEM [service.key].")
@click.option("--ca-dir", type=_PATH, help="Hashed CA directory [service.ca_dir].")
@click.option("--vomsdir", type=_PATH, help="VOMS LSC directory [service.vomsdir].")
@click.option("--policy", type=_PATH, help="Authorisation policy TOML [service.policy].")
@click.option("--threads", type=int, help="Worker threads [service.threads].")
@click.option("--tracker/--no-tracker", default=None, help="Run the tracker in-process.")
def serve_cmd(**options: Any) -> None:
    """Serve the SOAP processing service (WSDL at https://HOST:PORT/?wsdl)."""
    settings = serve.apply_overrides(get_settings(), options, OVERRIDES)
    serve.require(settings, "service.cert", "service.key", "service.ca_dir")
    svc = settings.service
    serve.json_logging(LOGGERS, access=[ACCESS_LOGGER, LEADER_LOGGER])  # who leads: INFO
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator)
    server = make_soap_server(gp, validator, TLSConfig(svc.cert, svc.key, svc.ca_dir))  # type: ignore[arg-type]
    parts: list[serve.Runnable] = [server]
    if svc.run_tracker:
        tracker = build_tracker(gp.core, settings)  # on PostgreSQL: only the leader's runs
        parts.append(tracker)
        parts.append(build_task_deliverer(gp.core, settings, tracker))
    if settings.myproxy.host is not None and settings.myproxy.renew and gp.delegations:
        parts.append(
            build_renewer(
                settings, gp.delegations, validator, registry=gp.core.registry, wms=gp.core.wms
            )
        )
    serve.run(
        parts,
        banner=lambda: f"gproc: serving {server.url}/ (WSDL: {server.url}/?wsdl)",
        name="gproc",
        cleanup=[gp.core.registry.close],
    )

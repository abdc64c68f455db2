"""``gproc serve``: the SOAP processing service over HTTPS with client proxies.

Options override the ``[service]`` settings (TOML file or ``GPROC_SERVICE__*``).
The tracker runs in the same process on its own thread unless ``--no-tracker``.
SIGTERM or SIGINT stop accepting, let running calls finish, stop the tracker.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gproc.app import build_tracker
from gproc.security.tls import TLSConfig
from gproc.services.soap.app import build_context, build_validator, make_soap_server
from gproc.settings import get_settings

_PATH = click.Path(path_type=Path)
_KEYS = ("host", "port", "cert", "key", "ca_dir", "vomsdir", "policy", "threads")


class _JsonLines(logging.Formatter):
    """Access lines are JSON already; add the time. Other records become JSON too."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        try:
            data: dict[str, Any] = json.loads(record.getMessage())
            if not isinstance(data, dict):
                raise ValueError
        except ValueError:
            data = {"message": record.getMessage()}
        out = {"time": stamp, "level": record.levelname, "logger": record.name, **data}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    for name in ("gproc.soap.access", "gproc.soap", "gproc.tracker"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        if name == "gproc.soap.access":
            logger.setLevel(logging.INFO)


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
def serve_cmd(tracker: bool | None, **options: Any) -> None:
    """Serve the SOAP processing service (WSDL at https://HOST:PORT/?wsdl)."""
    settings = get_settings()
    updates = {k: v for k, v in options.items() if k in _KEYS and v is not None}
    svc = settings.service.model_copy(update=updates)
    settings = settings.model_copy(update={"service": svc})
    if tracker is not None:
        settings.service.run_tracker = tracker
    missing = [k for k in ("cert", "key", "ca_dir") if getattr(svc, k) is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (options or [service] settings)")
    _setup_logging()
    validator = build_validator(svc.ca_dir, svc.vomsdir)  # type: ignore[arg-type]
    gp = build_context(settings, validator)
    server = make_soap_server(gp, validator, TLSConfig(svc.cert, svc.key, svc.ca_dir))  # type: ignore[arg-type]
    track = build_tracker(gp.core, settings) if settings.service.run_tracker else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    if track is not None:
        track.start()
    click.echo(f"gproc: serving {server.url}/ (WSDL: {server.url}/?wsdl)", err=False)
    sys.stdout.flush()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        click.echo("gproc: stopping", err=True)
        server.stop()
        if track is not None:
            track.stop()
        gp.core.registry.close()

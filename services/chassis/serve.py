"""One serve loop for every front: settings overrides from the command line, JSON
logging, start, signals, graceful stop.

``gproc serve``, ``gproc vo serve`` and ``gproc gateway serve`` (and every future
service) do the same four steps: :func:`apply_overrides` (CLI options onto the
settings, validated by the settings' own model), :func:`require` (what must be
set), build their servers, then :func:`run` them until SIGTERM/SIGINT.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import click
from pydantic import BaseModel, ValidationError

from gproc.security.chain import Validator
from gproc.security.truststore import TrustStore
from gproc.security.voms import VomsTrust
from gproc.settings import Settings


def build_validator(ca_dir: Path, vomsdir: Path | None) -> Validator:
    """The chain validator every front shares (CA directory, optional VOMS trust)."""
    return Validator(TrustStore(ca_dir), VomsTrust(vomsdir) if vomsdir else None)


class Runnable(Protocol):
    """What :func:`run` starts and stops: servers, the tracker, the SFTP front."""

    def start(self) -> Any: ...

    def stop(self) -> Any: ...


class JsonLines(logging.Formatter):
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


def json_logging(loggers: Iterable[str], access: Iterable[str] = ()) -> None:
    """JSON lines on stderr for these loggers; ``access`` loggers log every call (INFO)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    access = set(access)
    for name in {*loggers, *access}:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        if name in access:
            logger.setLevel(logging.INFO)


def apply_overrides(
    settings: Settings, options: Mapping[str, Any], table: Mapping[str, str]
) -> Settings:
    """Settings with the given CLI options applied (None: not given), validated.

    ``table`` maps option names to ``section.key`` (``{"port": "service.port"}``);
    a value the settings model refuses is a usage error naming the option."""
    sections: dict[str, dict[str, Any]] = {}
    for option, value in options.items():
        if value is None or option not in table:
            continue
        section, key = table[option].split(".", 1)
        sections.setdefault(section, {})[key] = value
    updates: dict[str, BaseModel] = {}
    for section, values in sections.items():
        current: BaseModel = getattr(settings, section)
        try:
            updates[section] = type(current).model_validate({**current.model_dump(), **values})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else "?"
            option = next((o for o, t in table.items() if t == f"{section}.{key}"), key)
            hint = f"--{option.replace('_', '-')}"
            raise click.BadParameter(err["msg"], param_hint=hint) from None
    return settings.model_copy(update=updates)


def require(settings: Settings, *keys: str) -> None:
    """A usage error unless every ``section.key`` is set (by an option or the settings)."""
    missing = [k for k in keys if _get(settings, k) is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (options or settings)")


def _get(settings: Settings, key: str) -> Any:
    section, name = key.split(".", 1)
    return getattr(getattr(settings, section), name)


def run(
    parts: Sequence[Runnable],
    *,
    banner: Callable[[], str],
    name: str,
    cleanup: Sequence[Callable[[], Any]] = (),
    stop: threading.Event | None = None,
) -> None:
    """Start ``parts`` in order, print ``banner()`` on stdout, wait for SIGTERM/SIGINT
    (or ``stop``), then stop them in the same order (servers first: they stop
    accepting and let running calls finish) and run ``cleanup``. Signals are
    caught only in the main thread."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    started: list[Runnable] = []
    try:
        for part in parts:
            part.start()
            started.append(part)
        # Everything made at start-up (settings, spyne's schema, trust stores) lives
        # as long as the process: freezing it keeps the collector's full passes,
        # the source of multi-100 ms stalls under load, from rescanning it.
        gc.freeze()
        click.echo(banner())
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    finally:
        click.echo(f"{name}: stopping", err=True)
        for part in started:
            part.stop()
        for step in cleanup:
            step()

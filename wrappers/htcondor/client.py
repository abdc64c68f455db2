"""The HTCondor client side of this process: its configuration and collectors.

The bindings keep one configuration per process. Two states of it end the whole
process from C++ (HTCondor's EXCEPT exits with status 4) instead of raising:

* ``CONDOR_CONFIG`` naming a file that does not exist: the configuration is empty,
  no network address is known, and the next connection attempt EXCEPTs
  ("Unwilling or unable to try IPv4 or IPv6");
* on some paths, a collector at a ``host:port`` that refuses connections.

Both are refused here, before the bindings are called, with an ``OSError`` that the
WMS and DAG runner report as ``WmsUnavailable``.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: host tools load this module before any config exists
    import htcondor2

_HOST_PORT = re.compile(r"^([A-Za-z0-9.-]+):(\d{1,5})$")


def missing_config(config: Path | str) -> FileNotFoundError:
    return FileNotFoundError(
        f"HTCondor client configuration {config} does not exist "
        "(is the pool up? `gproc pool up` starts the personal pool)"
    )


def activate_client_config(config: Path | str) -> None:
    """Make ``config`` this process's HTCondor configuration (``CONDOR_CONFIG``)."""
    if not Path(config).is_file():
        raise missing_config(config)
    import htcondor2

    os.environ["CONDOR_CONFIG"] = str(config)
    htcondor2.reload_config()


def activate_if_present(config: Path | str) -> bool:
    """Activate ``config`` now if it exists (else the WMS or DAG runner activates it at
    its first call, once the pool is up); True if it was activated."""
    if not Path(config).is_file():
        return False
    activate_client_config(config)
    return True


def use_client_config(config: Path | str | None) -> None:
    """Activate ``config`` unless it is already active (``None``: leave it as it is)."""
    if config is None:
        return
    if os.environ.get("CONDOR_CONFIG") != str(config) or not Path(config).is_file():
        activate_client_config(config)


def check_reachable(address: str) -> None:
    """Refuse a plain ``host:port`` collector that does not accept a connection."""
    m = _HOST_PORT.match(address)
    if m is None:
        return  # a sinful string or a name the bindings resolve themselves
    with socket.create_connection((m.group(1), int(m.group(2))), timeout=5):
        pass


def collector(address: str | None, config: Path | str | None = None) -> htcondor2.Collector:
    """A collector handle under ``config``: ``address``, else the configured one."""
    import htcondor2

    use_client_config(config)
    if address:
        check_reachable(address)
        return htcondor2.Collector(address)
    return htcondor2.Collector()

"""A pool gproc does not manage (``[htcondor]`` settings), with the personal pool's
read-only surface."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gproc.wrappers.htcondor.client import activate_client_config
from gproc.wrappers.htcondor.host import client_env as _client_env


class ExternalPool:
    """A pool gproc does not manage (settings ``[htcondor]``): same read-only surface."""

    root = None

    def __init__(
        self,
        client_config: Path | str,
        event_log: Path | None = None,
        collector: str | None = None,
        schedd_name: str | None = None,
    ) -> None:
        self.client_config = Path(client_config)
        self.event_log = event_log
        self.collector = collector
        self.schedd_name = schedd_name

    def is_up(self) -> bool:
        return bool(self.status()["up"])

    def status(self) -> dict[str, Any]:
        """Collector/schedd reachability and slots, through the client config."""
        out: dict[str, Any] = {
            "up": False,
            "external": True,
            "client_config": str(self.client_config),
        }
        try:
            with _client_env(self.client_config) as htcondor2:
                coll = (
                    htcondor2.Collector(self.collector) if self.collector else htcondor2.Collector()
                )
                out["slots"] = len(coll.query(htcondor2.AdType.Startd, projection=["Name"]))
                # located through the collector: the schedd may be on another host
                ad = coll.locate(htcondor2.DaemonType.Schedd, self.schedd_name)
                htcondor2.Schedd(ad).query(constraint="false", projection=["ClusterId"])
                out["schedd_name"] = str(ad.get("Name", ""))
                out["schedd_reachable"] = True
                out["bindings_version"] = htcondor2.version()
        except Exception as exc:  # diagnostic
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["up"] = bool(out.get("schedd_reachable")) and out.get("slots", 0) > 0
        return out

    def activate_client(self) -> None:
        activate_client_config(self.client_config)

"""Build the HTCondor WMS from gproc's ``[htcondor]`` settings (entry point ``gproc.wms``).

With no ``condor_config`` configured, gproc uses the personal pool that
``gproc pool up`` keeps under the state directory, and follows its schedd
event log. ``shared_filesystem = true`` submits without spooling: the schedd
reads the task directories in place (the personal pool sees them through bind
mounts and runs the jobs as its ``gproc`` account, to which job directories are
given). The service may start before the pool: until its client configuration
exists, calls answer ``WmsUnavailable`` (see :mod:`.client`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gproc.wrappers.htcondor.client import activate_if_present
from gproc.wrappers.htcondor.pool import PersonalPool
from gproc.wrappers.htcondor.schedd import HTCondorWMS


def create(config: Mapping[str, Any], state_dir: Path) -> HTCondorWMS:
    condor_config = config.get("condor_config")
    event_log = config.get("event_log")
    shared = bool(config.get("shared_filesystem", False))
    job_owner = None
    if condor_config is None:
        pool = PersonalPool(state_dir)
        condor_config = pool.client_config
        event_log = event_log or pool.event_log
        if shared:
            job_owner = pool.job_owner()
    condor_config = Path(condor_config)
    activate_if_present(condor_config)
    return HTCondorWMS(
        instance=config.get("instance", "gproc"),
        schedd_name=config.get("schedd_name"),
        collector=config.get("collector"),
        event_log=Path(event_log) if event_log else None,
        sandbox_root=Path(state_dir).resolve() / "sandboxes",
        shared_filesystem=shared,
        job_owner=job_owner,
        client_config=condor_config,
    )

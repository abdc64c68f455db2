"""Hand a renewed proxy to queued and running jobs: ``Schedd.refreshGSIProxy``.

Measured on the personal pool (HTCondor 23.9 schedd, htcondor2 25.14 bindings,
IDTOKENS, spooled jobs whose proxy was sent as a file): the schedd takes the new
file for an idle or running job and its ``x509UserProxyExpiration`` moves at once;
the copy in a running job's execute directory is HTCondor's to update (the shadow
forwards a changed proxy every ``SHADOW_CHECKPROXY_INTERVAL``, 600 s by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import htcondor2

# queued, running, held, transferring: the states a job still needs its proxy in
_WAITING_OR_RUNNING = "(JobStatus == 1 || JobStatus == 2 || JobStatus == 5 || JobStatus == 7)"


def refresh_proxies(schedd: Any, constraint: str, proxy: Path) -> int:
    """Give ``proxy`` to every job matching ``constraint`` that still needs one;
    returns how many took it (a job that left the queue meanwhile is skipped)."""
    ads = schedd.query(f"({constraint}) && {_WAITING_OR_RUNNING}", ["ClusterId", "ProcId"])
    done = 0
    for ad in ads:
        try:
            schedd.refreshGSIProxy(int(ad["ClusterId"]), int(ad["ProcId"]), str(proxy), 0)
        except htcondor2.HTCondorException:
            continue  # gone since the query
        done += 1
    return done

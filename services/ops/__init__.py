"""The operations dashboard: ``GET /ops/summary`` (JSON, grid administrators only),
the dashboard page that draws it (``/ops/``, assets in ``static/``), and
:func:`~gproc.services.ops.client.fetch_summary` for a portal that shows the page
itself and fetches the JSON with its user's proxy.

The figures come from :mod:`gproc.operations` (registry queries, the WMS's pool
summary); this package adds the services' health probes, the JSON shape and the
access rule (:class:`gproc.services.chassis.metrics.Operators`).
"""

from gproc.services.ops.client import fetch_summary
from gproc.services.ops.handler import asset

__all__ = ["asset", "fetch_summary"]

"""Prometheus metrics of every gproc front: request counts and latencies per service,
operation and fault code, recorded by the chassis access log, and ``GET /metrics``.

Every front built on the chassis goes through :class:`~gproc.services.chassis.wsgi.AccessLog`,
which already knows the operation (the XML guard or the front's router sets it), the
HTTP status and the fault code: it calls :func:`observe` once per request, so a new
service is counted without a line of its own. Labels are bounded: the operation is a
declared operation name (SOAP) or route name (REST), never a path or a user string.

Who may read ``/metrics`` (:class:`Operators`): the same TLS port and the same client
authentication as the service, allowed to grid administrators (a configured ``[vo]
admins`` DN, or the ``[vo] admin_role`` in any VO) and to the scraper DNs of
``[metrics] scrapers`` (the certificate Prometheus presents with ``tls_config``
``cert_file``/``key_file``). Anyone else gets 403 and a caller without a credential
401, so the figures (operation names, task counts, VO usage) never leak to the open
network. Figures computed at scrape time (task states, tracker lag) come from
collectors the front passes to its :class:`MetricsEndpoint`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gproc import operations
from gproc.security.identity import Identity
from gproc.security.wsgi_auth import ENV_IDENTITY
from gproc.vo import VoInvalid, dn_key

METRICS_PATH = "/metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

REGISTRY = CollectorRegistry()
"""The process's request metrics (one process may serve several fronts: the
``service`` label tells them apart)."""

REQUESTS = Counter(
    "gproc_requests",
    "Requests answered, by service, operation, HTTP status and fault code",
    ("service", "operation", "status", "fault"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "gproc_request_duration_seconds",
    "Time from the request reaching the front to the last byte of its answer",
    ("service", "operation"),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


def label(value: object, default: str = "-") -> str:
    """A bounded, printable label value (anything else becomes ``other``)."""
    if value is None or value == "":
        return default
    text = str(value)
    return text if _LABEL.match(text) else "other"


def observe(
    service: str, operation: str | None, status: int | None, fault: str | None, seconds: float
) -> None:
    """Count one request and its latency."""
    op = label(operation)
    REQUESTS.labels(label(service), op, label(status), label(fault, "")).inc()
    LATENCY.labels(label(service), op).observe(seconds)


@dataclass(frozen=True)
class Operators:
    """Who may read operational figures: grid administrators and, for ``/metrics``
    only, the configured scrapers. DNs are compared in their canonical form."""

    admin_role: str
    admins: frozenset[str] = frozenset()
    scrapers: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, admin_role: str, admins: Iterable[str] = (), scrapers: Iterable[str] = ()
    ) -> Operators:
        return cls(admin_role, frozenset(map(_dn, admins)), frozenset(map(_dn, scrapers)))

    @classmethod
    def from_settings(cls, settings: Any) -> Operators:
        """From ``[vo] admin_role``/``admins`` and ``[metrics] scrapers``."""
        return cls.of(settings.vo.admin_role, settings.vo.admins, settings.metrics.scrapers)

    def is_admin(self, ident: Identity | None) -> bool:
        """A configured admin DN, or ``/<vo>/Role=<admin_role>`` in any verified AC (the
        VO admin service's rule, for any VO: operators see the whole installation)."""
        if ident is None:
            return False
        if _dn(ident.subject_grid) in self.admins:
            return True
        return any(not f.groups and f.role == self.admin_role for f in ident.fqans)

    def may_scrape(self, ident: Identity | None) -> bool:
        return ident is not None and (
            _dn(ident.subject_grid) in self.scrapers or self.is_admin(ident)
        )


def _dn(dn: str) -> str:
    """The VO store's comparable DN form (a DN it cannot read matches nothing)."""
    try:
        return dn_key(dn)
    except VoInvalid:
        return "\0" + dn


class _Union:
    """The request metrics plus one endpoint's own scrape-time collectors."""

    def __init__(self, collectors: Sequence[Any]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        for c in self.collectors:
            yield from c.collect()


class RegistryFigures:
    """Scrape-time figures from the registry's database, one grouped query each: tasks
    (and, with ``workflows``, workflows) per state and the tracker's lag. A database
    that cannot be read gives ``gproc_registry_up 0`` instead of failing the scrape."""

    def __init__(self, engine: Engine, *, tasks: bool = True, workflows: bool = False) -> None:
        self.engine = engine
        self.tasks = tasks
        self.workflows = workflows

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("gproc_registry_up", "1 when the registry could be read")
        try:
            figures = list(self._figures())
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from figures

    def _figures(self) -> Iterator[Metric]:
        if self.tasks:
            yield _by_state(
                "gproc_tasks", "Tasks per state", operations.task_state_counts(self.engine)
            )
            beat = operations.tracker_beat(self.engine)
            if beat is not None:
                age = GaugeMetricFamily(
                    "gproc_tracker_last_cycle_age_seconds",
                    "Seconds since the tracker last recorded a finished cycle (its lag; "
                    f"recorded at most every {operations.HEARTBEAT_S:g} s)",
                )
                age.add_metric([], beat.age_s())
                yield age
                took = GaugeMetricFamily(
                    "gproc_tracker_cycle_duration_seconds", "Duration of that tracker cycle"
                )
                took.add_metric([], beat.cycle_ms / 1000)
                yield took
        if self.workflows:
            counts = operations.workflow_state_counts(self.engine)
            yield _by_state("gproc_workflows", "Workflows per state", counts)


def _by_state(name: str, doc: str, counts: dict[str, int]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc + " (registry, at scrape time)", labels=["state"])
    for state, n in sorted(counts.items()):
        g.add_metric([state], n)
    return g


class MetricsEndpoint:
    """``GET /metrics`` for one front: access by :class:`Operators`, Prometheus text format."""

    def __init__(self, operators: Operators, collectors: Sequence[Any] = ()) -> None:
        self.operators = operators
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Union(tuple(collectors)))  # type: ignore[arg-type]

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        ident = environ.get(ENV_IDENTITY)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", "only GET /metrics")
        if ident is None:
            return _json(start_response, "401 Unauthorized", "a client certificate is needed")
        if not self.operators.may_scrape(ident):
            return _json(
                start_response,
                "403 Forbidden",
                f"{ident.subject_grid} may not read metrics: it needs the role "
                f"{self.operators.admin_role} in a VO, or a DN in [metrics] scrapers",
            )
        body = self.text()
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        )
        return [body]


def _json(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
    code = int(status.split()[0])
    body = json.dumps({"status": code, "error": message}).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def metrics_endpoint(settings: Any, *collectors: Any) -> MetricsEndpoint:
    """A front's ``/metrics`` from its settings (``[vo]`` admins, ``[metrics] scrapers``)."""
    return MetricsEndpoint(Operators.from_settings(settings), collectors)


def or_default(metrics: MetricsEndpoint | None) -> MetricsEndpoint:
    """``metrics``, else the endpoint of the settings in force (``gproc.settings``)."""
    if metrics is not None:
        return metrics
    from gproc.settings import get_settings

    return metrics_endpoint(get_settings())

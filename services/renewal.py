"""Renewal of delegated proxies from MyProxy, as grid workload managers do it.

A delegation that asked for renewal (:meth:`DelegationStore.ask_renewal`: the MyProxy
username and server, never a passphrase) is renewed when less than ``before`` of it
is left: the service authenticates to MyProxy with its own host credential and proves
it holds the user's still valid delegated proxy (``myproxy-logon -a``); the user's
credential must name the service as a renewer (``myproxy-init -x -R <service DN>``).
The VOMS attributes of the old proxy are asked again for the new one (same VO, same
FQANs, in order; a limited delegation stays limited), the result must be of the same
identity with the same attributes, and it replaces the delegated file atomically.
Jobs already queued or running with that file are then handed the new proxy where
the WMS can do it (:meth:`WorkloadManager.refresh_proxy`).

:class:`ProxyRenewer` is a ``serve.Runnable`` (``gproc serve`` runs it beside the
tracker); :meth:`ProxyRenewer.run_once` is one pass. A failure is logged (never the
proxy) and retried next pass while the proxy is still valid.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gproc import errors
from gproc.leader import RENEWAL, Leadership, SoleLeader, leadership_for
from gproc.registry import Registry
from gproc.security.chain import Validator
from gproc.security.credentials import Credential, make_proxy
from gproc.security.delegation import DelegationError, DelegationInfo, DelegationStore
from gproc.security.errors import SecurityError
from gproc.security.identity import Identity, ProxyType, same_dn
from gproc.security.myproxy import MyProxyServer, renew
from gproc.services.myproxy_login import myproxy_server, with_voms
from gproc.settings import Settings
from gproc.states import ACTIVE
from gproc.wrappers.base import WorkloadManager

log = logging.getLogger("gproc.renewal")

# (proxy PEM, VO, FQANs, lifetime s) -> the proxy carrying that VO's AC
VomsAttach = Callable[[bytes, str, Sequence[str], int], bytes]


class ProxyRefresher(Protocol):
    """Hands a renewed proxy file to the jobs that use it; returns how many took it."""

    def refresh(self, proxy: Path) -> int: ...


class TaskProxyRefresher:
    """The jobs of active tasks whose ``x509_proxy`` is the renewed file."""

    def __init__(self, registry: Registry, wms: WorkloadManager) -> None:
        self.registry = registry
        self.wms = wms

    def refresh(self, proxy: Path) -> int:
        jobs = [
            row.job_id
            for row in self.registry.in_states(ACTIVE)
            if row.job_id and row.x509_proxy == str(proxy)
        ]
        return self.wms.refresh_proxy(jobs, proxy) if jobs else 0


@dataclass(frozen=True)
class Renewal:
    """What one pass did with one delegation."""

    delegation_id: str
    dn: str
    renewed: bool
    not_after: datetime  # the delegation's end now
    jobs_refreshed: int = 0
    error: str | None = None


class ProxyRenewer:
    """Renews due delegations in the background (start/stop), one pass at a time."""

    def __init__(
        self,
        store: DelegationStore,
        server: MyProxyServer,
        validator: Validator,
        *,
        service_cert: Path,
        service_key: Path,
        before: timedelta,
        lifetime_s: int,
        interval_s: float = 60.0,
        voms: VomsAttach | None = None,
        refresher: ProxyRefresher | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.store = store
        # replicas on PostgreSQL (one shared delegation directory): one renews
        self.leadership: Leadership = leadership or SoleLeader()
        self.server = server
        self.validator = validator
        self.service_cert = service_cert
        self.service_key = service_key
        self.before = before
        self.lifetime_s = lifetime_s
        self.interval_s = interval_s
        self.voms = voms
        self.refresher = refresher
        self._scheduler: BackgroundScheduler | None = None

    @property
    def server_name(self) -> str:
        """How delegations name this renewer's MyProxy server."""
        return f"{self.server.host}:{self.server.port}"

    # ---- running ----------------------------------------------------------------------
    def start(self) -> None:
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            self._safe_pass,
            "interval",
            seconds=self.interval_s,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.leadership.release()

    def _safe_pass(self) -> None:
        try:
            if not self.leadership.ensure():
                return  # another replica renews the shared store's delegations
            self.run_once()
        except Exception:  # the loop must survive anything one pass meets
            log.exception("proxy renewal pass failed")

    # ---- one pass ---------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> list[Renewal]:
        """Renew every delegation due now; one result per delegation looked at."""
        out = []
        for info in self.store.due_for_renewal(self.before, now):
            result = self._renew_one(info)
            if result.error:
                log.warning(
                    "delegation %s of %s not renewed: %s", info.delegation_id, info.dn, result.error
                )
            else:
                log.info(
                    "delegation %s of %s renewed until %s (%d jobs given the new proxy)",
                    info.delegation_id,
                    info.dn,
                    result.not_after.isoformat(),
                    result.jobs_refreshed,
                )
            out.append(result)
        return out

    def _renew_one(self, info: DelegationInfo) -> Renewal:
        assert info.renewal is not None
        failed = functools.partial(Renewal, info.delegation_id, info.dn, False, info.not_after)
        if info.renewal.server != self.server_name:
            return failed(error=f"asks for MyProxy server {info.renewal.server}, not ours")
        try:
            current = info.path.read_bytes()
            before = self.validator.validate(current)
            fresh = renew(
                self.server,
                current,
                info.renewal.username,
                self.lifetime_s,
                client_cert=self.service_cert,
                client_key=self.service_key,
            )
            fresh = self._no_stronger(self._with_attributes(fresh, before), before)
            self._check_same(before, self.validator.validate(fresh))
            renewed = self.store.replace_proxy(info.dn, info.delegation_id, fresh)
        except (errors.GprocError, DelegationError, SecurityError, OSError) as exc:
            return failed(error=str(exc))
        jobs = self._refresh(renewed.path)
        return Renewal(info.delegation_id, info.dn, True, renewed.not_after, jobs)

    def _with_attributes(self, fresh: bytes, before: Identity) -> bytes:
        """The renewed proxy with the old one's VOMS attributes (one VO: the primary)."""
        if not before.acs:
            return fresh
        if self.voms is None:
            raise errors.Internal("the proxy carries VOMS attributes and no VOMS is configured")
        primary = before.acs[0]
        return self.voms(fresh, primary.vo, [str(f) for f in primary.fqans], self.lifetime_s)

    def _no_stronger(self, fresh: bytes, before: Identity) -> bytes:
        """A limited delegation stays limited: MyProxy hands out full proxies, so
        the renewed one is wrapped in a limited proxy of itself."""
        if not before.limited:
            return fresh
        cred = _credential(fresh)
        hours = (cred.cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 3600
        return make_proxy(cred, kind=ProxyType.LIMITED, hours=hours).proxy_pem()

    @staticmethod
    def _check_same(before: Identity, after: Identity) -> None:
        old, new = [str(f) for f in before.fqans], [str(f) for f in after.fqans]
        same = same_dn(after.subject_grid, before.subject_grid) and after.limited == before.limited
        if not same or (old and new[: len(old)] != old):
            raise errors.Internal(
                f"the renewed proxy is of {after.subject_grid} ({after.proxy_type}) with "
                f"{new}, not of {before.subject_grid} ({before.proxy_type}) with {old}"
            )

    def _refresh(self, path: Path) -> int:
        if self.refresher is None:
            return 0
        try:
            return self.refresher.refresh(path)
        except errors.GprocError as exc:  # the WMS is down: its jobs keep the old copy
            log.warning("renewed proxy %s not handed to running jobs: %s", path.name, exc)
            return 0


def _credential(pem: bytes) -> Credential:
    certs = x509.load_pem_x509_certificates(pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise errors.Internal("the renewed proxy's key is not RSA")
    return Credential(certs[0], key, tuple(certs[1:]))


def build_renewer(
    settings: Settings,
    store: DelegationStore,
    validator: Validator,
    *,
    registry: Registry | None = None,
    wms: WorkloadManager | None = None,
) -> ProxyRenewer:
    """The renewer of ``gproc serve`` from ``[myproxy]`` (host credential from
    ``[service]``); with a registry and WMS it refreshes running jobs too."""
    mp, svc = settings.myproxy, settings.service
    if svc.cert is None or svc.key is None:
        raise errors.Internal("renewal needs the service credential ([service] cert, key)")
    refresher = TaskProxyRefresher(registry, wms) if registry and wms else None
    return ProxyRenewer(
        store,
        myproxy_server(settings),
        validator,
        service_cert=svc.cert,
        service_key=svc.key,
        before=timedelta(seconds=mp.renew_before_s),
        lifetime_s=mp.renew_lifetime_s,
        interval_s=mp.renew_interval_s,
        voms=functools.partial(with_voms, settings),
        refresher=refresher,
        leadership=(
            leadership_for(registry.engine, settings.tracker.replica_name, RENEWAL)
            if registry is not None
            else None
        ),
    )

"""Typed settings: defaults < TOML file < environment (``GPROC_`` prefix).

The TOML file is ``$GPROC_CONFIG`` if set, else ``etc/gproc.toml`` relative to
the working directory if it exists. Nested keys use ``__`` in the environment,
e.g. ``GPROC_HTCONDOR__SCHEDD_NAME``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class HTCondorSettings(BaseModel):
    """Where the pool is. Empty values mean: use the personal pool under the state dir."""

    condor_config: Path | None = Field(
        default=None, description="Client CONDOR_CONFIG file; default: the personal pool's"
    )
    collector: str | None = Field(default=None, description="host:port of the collector")
    schedd_name: str | None = Field(default=None, description="Schedd to use; default: local")
    event_log: Path | None = Field(
        default=None, description="Schedd EVENT_LOG readable by gproc; empty: reconcile only"
    )
    instance: str = Field(
        default="gproc", description="Marks jobs of this gproc instance (GprocInstance attr)"
    )
    shared_filesystem: bool = Field(
        default=False,
        description="The schedd reads task directories in place (same paths): no spooling",
    )


class TrackerSettings(BaseModel):
    interval_s: float = Field(default=5.0, gt=0)
    reconcile_every: int = Field(default=6, ge=1, description="Reconcile query every N cycles")
    submit_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a task may stay submitting (e.g. after a WMS outage) before "
        "the tracker looks it up in the WMS and adopts or resubmits it",
    )
    claim_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="Lease of a replica's claim on the tasks it is submitting (renewed "
        "while it submits); a dead replica's tasks are recovered once it runs out",
    )
    replica_name: str | None = Field(
        default=None,
        description="This replica's name in task claims and tracker leadership; default host:pid",
    )


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<state_dir>/gproc.db"
    )
    auto_upgrade: bool = Field(
        default=False,
        description="Services bring an older schema forward at start (else: gproc db upgrade)",
    )


class LimitsSettings(BaseModel):
    max_batch: int = Field(default=1000, ge=1)
    max_inline_input_bytes: int = Field(default=16 * 1024 * 1024, ge=0)


class ServiceSettings(BaseModel):
    """The SOAP service (``gproc serve``). Paths may be relative to the working directory."""

    host: str = Field(default="127.0.0.1", description="Address to listen on")
    port: int = Field(default=8443, ge=0, le=65535)
    cert: Path | None = Field(default=None, description="Host certificate (PEM)")
    key: Path | None = Field(default=None, description="Host key (PEM)")
    ca_dir: Path | None = Field(default=None, description="Hashed CA directory (X509_CERT_DIR)")
    vomsdir: Path | None = Field(default=None, description="VOMS LSC directory (X509_VOMS_DIR)")
    policy: Path = Field(default=Path("etc/policy.toml"), description="Authorisation policy")
    threads: int = Field(default=16, ge=1, le=512, description="Worker threads")
    request_timeout_s: int = Field(default=60, ge=1)
    read_timeout_s: float = Field(
        default=20.0, gt=0, description="Seconds a request may take to arrive, headers and body"
    )
    max_message_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_depth: int = Field(default=32, ge=8, le=256, description="XML element depth limit")
    max_inline_output_bytes: int = Field(default=1024 * 1024, ge=0)
    output_url_base: str | None = Field(
        default=None, description="Data gateway URL prefix for outputs above the inline cap"
    )
    allowed_input_dirs: list[Path] = Field(
        default_factory=list, description="Server directories callers may name as file:// inputs"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Reverse-proxy addresses allowed to forward chains"
    )
    delegation_dir: Path | None = Field(
        default=None, description="Delegated proxies; default <state_dir>/delegation"
    )
    run_tracker: bool = Field(default=True, description="Run the tracker in the same process")


class GatewaySettings(BaseModel):
    """The data gateway (``gproc gateway serve``) and task data through it."""

    namespace: Path | None = Field(
        default=None, description="Namespace TOML (etc/gateway.toml); None: no gateway"
    )
    host: str = Field(default="127.0.0.1", description="Address of the HTTPS and SFTP fronts")
    port: int = Field(default=8446, ge=0, le=65535, description="HTTPS front port")
    sftp_port: int | None = Field(default=2222, ge=0, le=65535, description="None: no SFTP")
    threads: int = Field(default=16, ge=1, le=512, description="HTTPS worker threads")
    sftp_sessions: int = Field(default=32, ge=1, le=1024, description="Concurrent SFTP sessions")
    sshkeys_dir: Path | None = Field(
        default=None, description="Registered SSH keys; default <state_dir>/sshkeys"
    )
    sftp_host_key: Path | None = Field(
        default=None, description="SFTP host key; default <state_dir>/sftp_host_key (made once)"
    )
    task_outputs: str = Field(
        default="tasks", description="Folder of the owner's private area receiving outputs"
    )


class VoSettings(BaseModel):
    """VO administration and the attribute authority (``gproc vo serve``)."""

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: the task registry's database"
    )
    admins: list[str] = Field(
        default_factory=list, description="DNs that administer every VO and may create VOs"
    )
    admin_role: str = Field(
        default="VO-Admin",
        description="Role in /<vo> that makes a VO admin, for the VO admin service and the "
        "processing policy alike (VO admins act on every task of their VO)",
    )
    vo: str | None = Field(default=None, description="VO served by the VOMS endpoint")
    aa_cert: Path | None = Field(default=None, description="Attribute authority certificate")
    aa_key: Path | None = Field(default=None, description="Attribute authority key")
    aa_uri_host: str = Field(
        default="localhost", description="Host in the AC URI: relying parties' <host>.lsc"
    )
    voms_host: str = Field(default="127.0.0.1", description="VOMS endpoint listen address")
    voms_port: int = Field(default=15000, ge=0, le=65535)
    admin_host: str = Field(default="127.0.0.1", description="Admin SOAP listen address")
    admin_port: int = Field(default=8444, ge=0, le=65535)
    max_ac_lifetime_s: int = Field(default=24 * 3600, ge=60)
    enforce_membership: bool = Field(
        default=False,
        description="Services refuse suspended/removed members of VOs in this database",
    )


class OgcSettings(BaseModel):
    """The OGC API - Processes front (``gproc ogc serve``); TLS and policy from [service]."""

    host: str = Field(default="127.0.0.1", description="Address to listen on")
    port: int = Field(default=8448, ge=0, le=65535)
    threads: int = Field(default=16, ge=1, le=512, description="Worker threads")
    sync_wait_s: float = Field(
        default=30.0, ge=0, le=600, description="How long a synchronous execute waits"
    )
    poll_s: float = Field(default=0.25, gt=0, le=10, description="Sync execute polling interval")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="Request body cap")
    max_inline_output_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Outputs above this are given by reference"
    )


class CatalogueSettings(BaseModel):
    """The GDIS data catalogue (``gproc catalogue``)."""

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<state_dir>/catalogue.db"
    )
    quicklooks: bool = Field(
        default=True,
        description="Render a quicklook PNG per dataset, kept in the gateway beside the raster",
    )
    gateway_url: str | None = Field(
        default=None,
        description="HTTPS URL of the gateway front (https://host:8446): STAC asset links; "
        "default gateway://<path>",
    )
    admins: list[str] = Field(
        default_factory=list, description="DNs that find datasets of every area"
    )
    input_types: dict[str, list[str]] = Field(
        default_factory=dict, description='Dataset types per tool port, "<tool>.<port>" = [...]'
    )
    tasks: bool = Field(
        default=False,
        description="Processing tasks take dataset: inputs and their outputs are catalogued",
    )
    host: str = Field(default="127.0.0.1", description="SOAP and STAC listen address")
    port: int = Field(default=8447, ge=0, le=65535, description="Catalogue SOAP port")
    stac_port: int | None = Field(default=8451, ge=0, le=65535, description="None: no STAC")
    threads: int = Field(default=8, ge=1, le=512)


class WorkflowSettings(BaseModel):
    """Workflows run by HTCondor DAGMan (``gproc workflow``, the workflow service)."""

    host: str = Field(default="127.0.0.1", description="Workflow SOAP service address")
    port: int = Field(default=8449, ge=0, le=65535, description="Workflow SOAP service port")
    max_nodes: int = Field(default=1000, ge=1, description="DAG nodes per workflow, expanded")
    node_retry: int = Field(default=2, ge=0, le=100, description="DAGMan RETRY of each node")
    max_query_branches: int = Field(
        default=500, ge=1, description="Datasets a start task's catalogue query may fan out over"
    )
    dagman: Path = Field(
        default=Path("/usr/bin/condor_dagman"), description="condor_dagman on the schedd's host"
    )
    scan_interval_s: int = Field(
        default=1, ge=1, le=60, description="DAGMAN_USER_LOG_SCAN_INTERVAL of each DAG"
    )
    status_interval_s: int = Field(default=5, ge=1, description="Node status file updates")
    interval_s: float = Field(default=5.0, gt=0, description="Workflow tracker cycle")
    submit_grace_s: float = Field(
        default=60.0, gt=0, description="Age of a 'submitting' workflow before recovery"
    )
    callback_timeout_s: float = Field(default=5.0, gt=0)
    callback_max_attempts: int = Field(default=12, ge=1)
    callback_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay")


class PortalSettings(BaseModel):
    """The web portal (``gproc portal serve``): it calls the SOAP services below with
    the signed-in user's proxy, as any external portal would."""

    host: str = Field(default="127.0.0.1", description="Portal listen address")
    port: int = Field(default=8450, ge=0, le=65535, description="Portal HTTPS port")
    threads: int = Field(default=16, ge=1, le=512)
    processing_url: str = Field(default="https://127.0.0.1:8443/", description="Processing SOAP")
    workflow_url: str = Field(default="https://127.0.0.1:8447/", description="Workflow SOAP")
    catalogue_url: str = Field(default="https://127.0.0.1:8447/", description="Catalogue SOAP")
    stac_url: str | None = Field(
        default="https://127.0.0.1:8451", description="Catalogue STAC (quicklooks)"
    )
    gateway_url: str = Field(default="https://127.0.0.1:8446", description="Data gateway HTTPS")
    ops_url: str | None = Field(
        default=None, description="Dashboard JSON (GET with the user's proxy); None: no dashboard"
    )
    database_url: str | None = Field(
        default=None, description="Session store (SQLAlchemy URL); default: [database]"
    )
    secret_file: Path | None = Field(
        default=None, description="Key sealing proxies at rest; default <state_dir>/portal.key"
    )
    session_idle_s: int = Field(default=1800, ge=30, description="Idle sessions end")
    session_max_s: int = Field(default=12 * 3600, ge=60, description="Sessions end at the latest")
    vos: list[str] = Field(default_factory=lambda: ["gisheo"], description="VOs offered at login")
    base_layer_url: str | None = Field(
        default=None, description="Tile URL template of the map's base layer; None: plain"
    )
    base_layer_attribution: str = Field(default="")
    vendor_dir: Path | None = Field(
        default=None, description="npm modules folder holding leaflet/dist (default: the repo's)"
    )
    max_upload_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)


class MetricsSettings(BaseModel):
    """``/metrics`` on every front and the operations dashboard (``GET /ops/summary``)."""

    scrapers: list[str] = Field(
        default_factory=list,
        description="Certificate DNs (e.g. Prometheus's client certificate) that may read "
        "/metrics besides grid administrators",
    )
    probe: dict[str, str] = Field(
        default_factory=dict,
        description="Service name -> HTTPS URL probed for the dashboard's health table",
    )
    probe_timeout_s: float = Field(default=3.0, gt=0, le=60)
    window_s: int = Field(default=24 * 3600, ge=60, le=90 * 24 * 3600)
    bucket_s: int = Field(default=3600, ge=10, le=24 * 3600)


class MyProxySettings(BaseModel):
    """MyProxy sign-on (portal logins) and renewal of delegated proxies (``gproc serve``).

    TLS trust, the service credential and the vomsdir default to ``[service]``'s."""

    host: str | None = Field(default=None, description="MyProxy server host; None: no MyProxy")
    port: int = Field(default=7512, ge=1, le=65535)
    server_dn: str | None = Field(
        default=None, description="The server certificate's DN; None: it must name the host"
    )
    ca_dir: Path | None = Field(default=None, description="CA directory; default service.ca_dir")
    timeout_s: float = Field(default=20.0, gt=0, le=300, description="Whole exchange deadline")
    logon_lifetime_s: int = Field(
        default=2 * 3600, ge=300, le=7 * 24 * 3600, description="Lifetime of sign-on proxies"
    )
    vomses: Path | None = Field(
        default=None,
        description="vomses file naming the VOMS servers of sign-on; None: gproc's own "
        "VOMS endpoint of [vo] (vo, voms_host, voms_port, aa_cert)",
    )
    vomsdir: Path | None = Field(default=None, description="LSC directory; default service.vomsdir")
    renew: bool = Field(default=True, description="Run the proxy renewer in gproc serve")
    renew_before_s: int = Field(
        default=3600, ge=30, description="Renew a delegated proxy when less than this is left"
    )
    renew_lifetime_s: int = Field(
        default=12 * 3600, ge=300, le=7 * 24 * 3600, description="Lifetime asked at renewal"
    )
    renew_interval_s: float = Field(default=60.0, gt=0, description="Renewer cycle")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPROC_", env_nested_delimiter="__")

    state_dir: Path = Field(default=Path(".state"))
    wms: str = Field(default="htcondor", description="WMS implementation (entry point name)")
    htcondor: HTCondorSettings = HTCondorSettings()
    tracker: TrackerSettings = TrackerSettings()
    database: DatabaseSettings = DatabaseSettings()
    limits: LimitsSettings = LimitsSettings()
    service: ServiceSettings = ServiceSettings()
    gateway: GatewaySettings = GatewaySettings()
    vo: VoSettings = VoSettings()
    ogc: OgcSettings = OgcSettings()
    catalogue: CatalogueSettings = CatalogueSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    portal: PortalSettings = PortalSettings()
    metrics: MetricsSettings = MetricsSettings()
    myproxy: MyProxySettings = MyProxySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml = config_file()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.state_dir.resolve() / 'gproc.db'}"

    @property
    def catalogue_database_url(self) -> str:
        url = self.catalogue.database_url
        return url or f"sqlite:///{self.state_dir.resolve() / 'catalogue.db'}"

    @property
    def vo_database_url(self) -> str:
        return self.vo.database_url or self.database_url

    @property
    def tasks_dir(self) -> Path:
        return self.state_dir.resolve() / "tasks"

    @property
    def workflows_dir(self) -> Path:
        return self.state_dir.resolve() / "workflows"

    @property
    def pool_dir(self) -> Path:
        return self.state_dir.resolve() / "pool"


def config_file() -> Path | None:
    """The TOML config in force; a named file that does not exist is an error."""
    named = os.environ.get("GPROC_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"GPROC_CONFIG names {path}, which is not a file")
        return path
    default = Path("etc/gproc.toml")
    return default if default.is_file() else None


@lru_cache(maxsize=1)
def get_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)

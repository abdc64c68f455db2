"""``gproc vo ...`` (VO administration on the local VO database) and
``gproc proxy-init`` (user certificate -> RFC 3820 proxy with a VOMS AC).

``gproc vo`` acts on the database directly, as the local operator (recorded in the
audit log as ``/O=gproc/OU=local/CN=<unix user>``): whoever can read the database
administers it anyway. Remote administrators use the SOAP service (``gproc vo serve``).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from gproc.settings import get_settings
from gproc.vo import Actor, MemberInfo, VoError, VoStore
from gproc.vo_transfer import dumps, export_vo, import_vo

_PATH = click.Path(path_type=Path)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
ca_opt = click.option("--ca", "ca_dn", help="Issuing CA DN (when the DN has several).")


def local_actor() -> Actor:
    return Actor(f"/O=gproc/OU=local/CN={getpass.getuser()}")


@contextmanager
def _store() -> Iterator[tuple[VoStore, Actor]]:
    settings = get_settings()
    actor = local_actor()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = VoStore(
        settings.vo_database_url,
        admins=[*settings.vo.admins, actor.dn],
        admin_role=settings.vo.admin_role,
        auto_upgrade=settings.database.auto_upgrade,
    )
    try:
        yield store, actor
    except VoError as exc:
        raise click.ClickException(f"{exc.code}: {exc}") from None
    finally:
        store.close()


def _member_out(m: MemberInfo, as_json: bool) -> None:
    data: dict[str, Any] = {
        "vo": m.vo,
        "dn": m.dn,
        "ca": m.ca_dn,
        "email": m.email,
        "suspended": m.suspended,
        "suspended_reason": m.suspended_reason,
        "suspended_at": m.suspended_at.isoformat() if m.suspended_at else None,
        "fqans": [x.fqan for x in m.memberships],
    }
    if as_json:
        click.echo(json.dumps(data))
        return
    state = f"SUSPENDED ({m.suspended_reason})" if m.suspended else "active"
    click.echo(f"{m.dn}  [{m.ca_dn}]  {state}  {' '.join(x.fqan for x in m.memberships)}")


@click.group("vo")
def vo_group() -> None:
    """VO administration: VOs, groups, roles, members, export/import, audit log."""


def _simple(name: str, doc: str, *params: Callable[[Any], Any]) -> Callable[..., Any]:
    def deco(fn: Callable[..., Any]) -> Any:
        cmd: Any = fn
        for p in reversed(params):
            cmd = p(cmd)
        return vo_group.command(name, help=doc)(cmd)

    return deco


@_simple(
    "create",
    "Create a VO (its root group and admin role come with it).",
    click.argument("vo"),
    click.option("--description", default=""),
)
def create_cmd(vo: str, description: str) -> None:
    with _store() as (store, actor):
        store.create_vo(actor, vo, description)


@_simple(
    "group-add",
    "Create a group such as /testvo/grid (its parent must exist).",
    click.argument("vo"),
    click.argument("group"),
)
def group_add_cmd(vo: str, group: str) -> None:
    with _store() as (store, actor):
        store.create_group(actor, vo, group)


@_simple("role-add", "Create a role.", click.argument("vo"), click.argument("role"))
def role_add_cmd(vo: str, role: str) -> None:
    with _store() as (store, actor):
        store.create_role(actor, vo, role)


@_simple(
    "member-add",
    "Add a member (certificate DN and issuing CA DN).",
    click.argument("vo"),
    click.argument("dn"),
    click.option("--ca", "ca_dn", required=True),
    click.option("--email"),
    json_opt,
)
def member_add_cmd(vo: str, dn: str, ca_dn: str, email: str | None, as_json: bool) -> None:
    with _store() as (store, actor):
        _member_out(store.add_member(actor, vo, dn, ca_dn, email), as_json)


@_simple(
    "suspend",
    "Suspend a member (no new ACs; services refuse the member).",
    click.argument("vo"),
    click.argument("dn"),
    click.option("--reason", required=True),
    ca_opt,
    json_opt,
)
def suspend_cmd(vo: str, dn: str, reason: str, ca_dn: str | None, as_json: bool) -> None:
    with _store() as (store, actor):
        _member_out(store.suspend_member(actor, vo, dn, reason, ca_dn), as_json)


@_simple(
    "restore", "Lift a suspension.", click.argument("vo"), click.argument("dn"), ca_opt, json_opt
)
def restore_cmd(vo: str, dn: str, ca_dn: str | None, as_json: bool) -> None:
    with _store() as (store, actor):
        _member_out(store.restore_member(actor, vo, dn, ca_dn), as_json)


@_simple(
    "remove",
    "Remove a member and all their memberships.",
    click.argument("vo"),
    click.argument("dn"),
    ca_opt,
)
def remove_cmd(vo: str, dn: str, ca_dn: str | None) -> None:
    with _store() as (store, actor):
        store.remove_member(actor, vo, dn, ca_dn)


@_simple(
    "grant",
    "Grant a group membership, or a role in a group (--role).",
    click.argument("vo"),
    click.argument("dn"),
    click.argument("group"),
    click.option("--role"),
    ca_opt,
    json_opt,
)
def grant_cmd(
    vo: str, dn: str, group: str, role: str | None, ca_dn: str | None, as_json: bool
) -> None:
    with _store() as (store, actor):
        _member_out(store.grant(actor, vo, dn, group, role, ca_dn), as_json)


@_simple(
    "revoke",
    "Revoke a role in a group (--role) or a group with its subgroups.",
    click.argument("vo"),
    click.argument("dn"),
    click.argument("group"),
    click.option("--role"),
    ca_opt,
    json_opt,
)
def revoke_cmd(
    vo: str, dn: str, group: str, role: str | None, ca_dn: str | None, as_json: bool
) -> None:
    with _store() as (store, actor):
        _member_out(store.revoke(actor, vo, dn, group, role, ca_dn), as_json)


@_simple(
    "members",
    "List or search members.",
    click.argument("vo"),
    click.option("--search", help="Substring of DN, CA or e-mail."),
    click.option("--suspended/--active", default=None),
    json_opt,
)
def members_cmd(vo: str, search: str | None, suspended: bool | None, as_json: bool) -> None:
    with _store() as (store, actor):
        for m in store.list_members(actor, vo, search, suspended):
            _member_out(m, as_json)


@_simple("groups", "List groups and roles.", click.argument("vo"), json_opt)
def groups_cmd(vo: str, as_json: bool) -> None:
    with _store() as (store, actor):
        data = {"groups": store.list_groups(actor, vo), "roles": store.list_roles(actor, vo)}
    click.echo(
        json.dumps(data)
        if as_json
        else "groups: " + " ".join(data["groups"]) + "\nroles:  " + " ".join(data["roles"])
    )


@_simple(
    "export",
    "Write the VO as a gproc-vo/1 JSON document.",
    click.argument("vo"),
    click.option("-o", "--out", type=_PATH, help="File (default: stdout)."),
)
def export_cmd(vo: str, out: Path | None) -> None:
    with _store() as (store, actor):
        text = dumps(export_vo(store, actor, vo))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)


@_simple(
    "import",
    "Merge a gproc-vo/1 JSON document (see gproc/vo_transfer.py).",
    click.argument("path", type=_PATH),
    click.option("--prune", is_flag=True, help="Remove members not in the file."),
)
def import_cmd(path: Path, prune: bool) -> None:
    with _store() as (store, actor):
        counts = import_vo(store, actor, path.read_text(), prune=prune)
    click.echo(json.dumps(counts))


@_simple(
    "audit",
    "Show the audit log of a VO.",
    click.argument("vo"),
    click.option("--limit", type=int, default=1000),
    json_opt,
)
def audit_cmd(vo: str, limit: int, as_json: bool) -> None:
    with _store() as (store, actor):
        rows = store.audit_log(actor, vo, limit=limit)
    for r in rows:
        line = {
            "time": r.time.isoformat(),
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": r.detail,
        }
        click.echo(
            json.dumps(line)
            if as_json
            else f"{line['time']}  {r.actor}  {r.action}  {r.target}  {json.dumps(r.detail)}"
        )


VO_OVERRIDES = {k: f"service.{k}" for k in ("ca_dir", "vomsdir", "cert", "key")}


@_simple(
    "serve",
    "Serve the VO admin SOAP service and the VOMS endpoint ([vo] settings).",
    click.option("--ca-dir", type=_PATH, help="Hashed CA directory [service.ca_dir]."),
    click.option("--vomsdir", type=_PATH, help="VOMS LSC directory [service.vomsdir]."),
    click.option("--cert", type=_PATH, help="Admin service certificate [service.cert]."),
    click.option("--key", type=_PATH, help="Host key of the admin service [service.key]."),
)
def serve_cmd(**options: Any) -> None:
    from gproc.security.attribute_authority import AttributeAuthority
    from gproc.security.credentials import load_credential
    from gproc.security.tls import TLSConfig
    from gproc.services.chassis import serve
    from gproc.services.chassis.metrics import metrics_endpoint
    from gproc.services.vo_admin.app import ACCESS_LOGGER, LOGGERS, make_admin_server
    from gproc.services.voms_server import VomsServer

    settings = serve.apply_overrides(get_settings(), options, VO_OVERRIDES)
    serve.require(settings, "service.cert", "service.key", "service.ca_dir")
    serve.require(settings, "vo.vo", "vo.aa_cert", "vo.aa_key")
    svc, cfg = settings.service, settings.vo
    assert svc.ca_dir and svc.cert and svc.key and cfg.vo and cfg.aa_cert and cfg.aa_key
    serve.json_logging(LOGGERS, access=[ACCESS_LOGGER, "gproc.voms"])
    validator = serve.build_validator(svc.ca_dir, svc.vomsdir)
    store = VoStore(
        settings.vo_database_url,
        admins=cfg.admins,
        admin_role=cfg.admin_role,
        auto_upgrade=settings.database.auto_upgrade,
    )
    admin = make_admin_server(
        store,
        validator,
        TLSConfig(svc.cert, svc.key, svc.ca_dir),
        host=cfg.admin_host,
        port=cfg.admin_port,
        metrics=metrics_endpoint(settings),
    )
    aa = AttributeAuthority(
        store,
        load_credential(cfg.aa_cert, cfg.aa_key),
        host=cfg.aa_uri_host,
        port=cfg.voms_port,
        max_lifetime_s=cfg.max_ac_lifetime_s,
    )
    voms = VomsServer(
        aa,
        validator,
        TLSConfig(cfg.aa_cert, cfg.aa_key, svc.ca_dir),
        cfg.vo,
        host=cfg.voms_host,
        port=cfg.voms_port,
        metrics=metrics_endpoint(settings),
    )
    serve.run(
        [admin, voms],
        banner=lambda: f"gproc vo: admin {admin.url}/?wsdl, VOMS {cfg.vo} on port {voms.port}",
        name="gproc vo",
        cleanup=[store.close],
    )


@click.command("proxy-init")
@click.option(
    "--voms", "voms", required=True, help="VO[:FQAN[,FQAN...]], e.g. testvo:/testvo/Role=admin"
)
@click.option("--vomses", type=_PATH, required=True, help="vomses file naming the endpoint.")
@click.option("--cert", type=_PATH, required=True, help="User certificate PEM.")
@click.option("--key", type=_PATH, required=True, help="User key PEM.")
@click.option("--ca-dir", type=_PATH, required=True, help="Hashed CA directory.")
@click.option("--vomsdir", type=_PATH, required=True, help="LSC directory to check the AC.")
@click.option("--out", type=_PATH, required=True, help="Proxy file to write (mode 0600).")
@click.option("--hours", type=float, default=12.0, show_default=True)
def proxy_init_cmd(
    voms: str,
    vomses: Path,
    cert: Path,
    key: Path,
    ca_dir: Path,
    vomsdir: Path,
    out: Path,
    hours: float,
) -> None:
    """Make an RFC 3820 proxy with a VOMS AC (for users without voms-clients)."""
    from gproc.services.voms_client import VomsClientError, proxy_init, servers_for

    vo, _, wanted = voms.partition(":")
    try:
        servers = servers_for(vomses, vo)
        ident = proxy_init(
            cert,
            key,
            out,
            server=servers[0],
            ca_dir=ca_dir,
            vomsdir=vomsdir,
            fqans=[f for f in wanted.split(",") if f],
            hours=hours,
        )
    except VomsClientError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"proxy {out} for {ident.subject_grid} until "
        f"{ident.not_after.isoformat(timespec='seconds')}"
    )
    for fq in ident.fqans:
        click.echo(f"attribute : {fq.long}")

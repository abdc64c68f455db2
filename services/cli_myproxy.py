"""``gproc myproxy``: sign on through MyProxy from the command line, and one pass of
the renewer of delegated proxies (what ``gproc serve`` runs every interval).

Options override ``[myproxy]`` (and ``[service]`` for trust and the host
credential). The passphrase is read from the terminal without echo, or from stdin
with ``--stdin``; it is never printed, nor is the proxy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gproc import errors
from gproc.security.credentials import write_private
from gproc.security.delegation import DelegationStore
from gproc.services.chassis import serve
from gproc.settings import get_settings

_PATH = click.Path(path_type=Path)
OVERRIDES = {
    "host": "myproxy.host",
    "port": "myproxy.port",
    "server_dn": "myproxy.server_dn",
    "ca_dir": "myproxy.ca_dir",
    "vomses": "myproxy.vomses",
    "vomsdir": "myproxy.vomsdir",
}


def _server_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option("--host", help="MyProxy server [myproxy.host]."),
            click.option("--port", type=int, help="Its port [myproxy.port]."),
            click.option("--server-dn", help="Its certificate's DN [myproxy.server_dn]."),
            click.option("--ca-dir", type=_PATH, help="CA directory [myproxy/service ca_dir]."),
            click.option("--vomses", type=_PATH, help="VOMS servers [myproxy.vomses]."),
            click.option("--vomsdir", type=_PATH, help="LSC directory [myproxy/service vomsdir]."),
        ]
    ):
        fn = option(fn)
    return fn


@click.group("myproxy")
def myproxy_group() -> None:
    """MyProxy sign-on and renewal of delegated proxies."""


@myproxy_group.command("logon")
@click.option("-l", "--username", required=True, help="MyProxy username.")
@click.option("--vo", required=True, help="VO whose attributes the proxy carries.")
@click.option("--role", help="Role in the VO's root group.")
@click.option("--out", type=_PATH, required=True, help="Proxy file to write (mode 0600).")
@click.option("--lifetime", "lifetime_s", type=int, help="Seconds [myproxy.logon_lifetime_s].")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the passphrase from stdin.")
@_server_options
def logon_cmd(
    username: str,
    vo: str,
    role: str | None,
    out: Path,
    lifetime_s: int | None,
    from_stdin: bool,
    **options: Any,
) -> None:
    """Sign on: a VOMS proxy of a MyProxy credential (what the portal's login does)."""
    from gproc.services.myproxy_login import sign_on

    settings = serve.apply_overrides(get_settings(), options, OVERRIDES)
    if from_stdin:
        passphrase = sys.stdin.readline().rstrip("\r\n")
    else:
        passphrase = click.prompt("MyProxy pass phrase", hide_input=True)
    try:
        pem = sign_on(settings, username, passphrase, vo, role, lifetime_s=lifetime_s)
        write_private(out, pem, 0o600)
    except errors.GprocError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the proxy {out}: {exc.strerror}") from None
    click.echo(f"proxy {out} for MyProxy user {username} with the attributes of {vo}")


@myproxy_group.command("renew")
@_server_options
@click.option("--cert", type=_PATH, help="Service certificate [service.cert].")
@click.option("--key", type=_PATH, help="Service key [service.key].")
def renew_cmd(cert: Path | None, key: Path | None, **options: Any) -> None:
    """One pass of the renewer over the delegation store ([service] delegation_dir)."""
    from gproc.services.chassis import build_validator
    from gproc.services.renewal import build_renewer

    settings = serve.apply_overrides(get_settings(), options, OVERRIDES)
    settings = serve.apply_overrides(
        settings, {"cert": cert, "key": key}, {"cert": "service.cert", "key": "service.key"}
    )
    svc, mp = settings.service, settings.myproxy
    ca_dir, vomsdir = mp.ca_dir or svc.ca_dir, mp.vomsdir or svc.vomsdir
    if ca_dir is None:
        raise click.UsageError("missing the CA directory (--ca-dir or settings)")
    validator = build_validator(ca_dir, vomsdir)
    store = DelegationStore(
        svc.delegation_dir or settings.state_dir.resolve() / "delegation", validator
    )
    try:
        results = build_renewer(settings, store, validator).run_once()
    except errors.GprocError as exc:
        raise click.ClickException(str(exc)) from None
    for r in results:
        what = f"renewed until {r.not_after.isoformat(timespec='seconds')}" if r.renewed else ""
        click.echo(f"{r.delegation_id}\t{r.dn}\t{what or 'not renewed: ' + str(r.error)}")
    click.echo(f"{sum(r.renewed for r in results)} of {len(results)} due delegations renewed")
    if any(not r.renewed for r in results):
        sys.exit(1)

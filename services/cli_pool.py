"""``gproc pool up|down|status|add-node|remove-node``: the personal HTCondor pool.

Also runnable as ``python -m gproc.services.cli_pool``. The pool lives under the
settings' ``state_dir`` unless ``--state-dir`` says otherwise."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from gproc.settings import get_settings
from gproc.wrappers.htcondor.pool import PersonalPool, PoolError


def _pool(state_dir: Path | None) -> PersonalPool:
    return PersonalPool(state_dir or get_settings().state_dir)


@click.group("pool")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="State directory (default: settings state_dir).",
)
@click.pass_context
def pool(ctx: click.Context, state_dir: Path | None) -> None:
    """Personal HTCondor pool on 127.0.0.1 (a trixie root run with chroot)."""
    ctx.obj = _pool(state_dir)


@pool.command()
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to wait for the daemons once started.",
)
@click.pass_obj
def up(obj: PersonalPool, timeout: float) -> None:
    """Build the root if needed, start the pool and wait until it takes jobs."""
    t0 = time.monotonic()
    try:
        info = obj.up(timeout=timeout)
    except PoolError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"pool up in {time.monotonic() - t0:.1f}s: {info.get('slots')} slot(s), "
        f"schedd {info.get('schedd_name')}, {info.get('condor_version')}"
    )
    click.echo(f"CONDOR_CONFIG={obj.client_config}")


@pool.command()
@click.pass_obj
def down(obj: PersonalPool) -> None:
    """Stop every daemon and unmount what the pool mounted."""
    t0 = time.monotonic()
    try:
        obj.down()
    except PoolError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pool down in {time.monotonic() - t0:.1f}s")


@pool.command("add-node")
@click.argument("name")
@click.option("--slots", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option(
    "--instance",
    default=None,
    help="Run only the jobs of this gproc instance (GprocInstance), and prefer them.",
)
@click.option("--timeout", type=float, default=60.0, show_default=True)
@click.pass_obj
def add_node(
    obj: PersonalPool, name: str, slots: int, instance: str | None, timeout: float
) -> None:
    """Start an extra execute node NAME in a network namespace of its own (idempotent)."""
    t0 = time.monotonic()
    try:
        info = obj.add_node(name, slots=slots, instance=instance, timeout=timeout)
    except (PoolError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"node {info['name']} up in {time.monotonic() - t0:.1f}s: "
        f"{info['slots']} slot(s) at {info['address']}"
    )


@pool.command("remove-node")
@click.argument("name")
@click.pass_obj
def remove_node(obj: PersonalPool, name: str) -> None:
    """Stop execute node NAME; remove its namespace, veth pair and mounts."""
    try:
        found = obj.remove_node(name)
    except (PoolError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"node {name} removed" if found else f"no node {name}")


@pool.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def status(obj: PersonalPool, as_json: bool) -> None:
    """Show whether the pool is up, what answers, slots and versions."""
    info = obj.status()
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
    else:
        for key in sorted(info):
            if key != "nodes":
                click.echo(f"{key}: {info[key]}")
        for node in info.get("nodes", []):
            click.echo(
                f"node {node['name']}: {node['address']} ({node['netns']}), "
                f"{'running' if node['running'] else 'STOPPED'}, "
                f"{node['slots_advertised']}/{node['slots']} slot(s) advertised, "
                f"{node['slots_busy']} busy"
                + (f", only instance {node['instance']}" if node["instance"] else "")
            )
    sys.exit(0 if info["up"] else 1)


if __name__ == "__main__":
    pool()

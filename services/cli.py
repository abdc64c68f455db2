"""The ``gproc`` command: entry point over the core, the pool, PKI and the services."""

from __future__ import annotations

import logging

import click

from gproc.services.cli_catalogue import catalogue_group
from gproc.services.cli_data import data_group, gateway_group
from gproc.services.cli_db import db_group
from gproc.services.cli_myproxy import myproxy_group
from gproc.services.cli_ogc import ogc_group
from gproc.services.cli_pki import pki_group
from gproc.services.cli_pool import pool
from gproc.services.cli_portal import portal_group
from gproc.services.cli_serve import serve_cmd
from gproc.services.cli_tasks import task_group, tools_cmd, tracker_group
from gproc.services.cli_vo import proxy_init_cmd, vo_group
from gproc.services.cli_workflows import workflow_group


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """gproc: Earth-observation processing tasks on an HTCondor grid pool."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(tools_cmd)
main.add_command(task_group)
main.add_command(tracker_group)
main.add_command(serve_cmd)
main.add_command(data_group)
main.add_command(gateway_group)
main.add_command(vo_group)
main.add_command(proxy_init_cmd)
main.add_command(db_group)
main.add_command(pool, "pool")
main.add_command(pki_group, "pki")
main.add_command(ogc_group)
main.add_command(workflow_group)
main.add_command(catalogue_group)
main.add_command(myproxy_group)
main.add_command(portal_group)

if __name__ == "__main__":
    main()

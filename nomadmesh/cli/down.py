"""`nomadmesh down`: purge the managed jobs and stop the agent `nomadmesh up` started here."""
from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("down")
@click.option("--nomad-addr", default=None, metavar="URL",
              help="Nomad HTTP API.  [default: the agent `up` started here, else $NOMAD_ADDR or :4646]")
@click.option("--consul-addr", default=None, metavar="URL", help="Consul HTTP API (same defaults).")
def down_command(nomad_addr: str | None, consul_addr: str | None) -> None:
    """Purge every job nomadmesh manages and stop the agent `up` started. Safe to run twice.

    Example:

        nomadmesh down
    """
    from nomadmesh.deploy.up import down

    for line in down(Path.cwd(), os.environ, nomad_addr, consul_addr):
        click.echo(line)

"""What `promote` and `abort` share: find the running release of a service and end it one way."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from nomadmesh.deploy.target import Target


def end_release(service: str, target: Target, promote: bool) -> None:
    from nomadmesh.deploy.consul_api import ConsulAPI
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.progress import make_progress
    from nomadmesh.release.controller import ending_for
    from nomadmesh.release.target import ConsulSide

    progress = make_progress(False)
    try:
        ending, release_id = ending_for(NomadAPI(target), ConsulSide(ConsulAPI(target)), service, progress)
        note = ending.promote() if promote else ending.roll_back(release_id)
    finally:
        progress.close()
    if note:
        click.echo(f"Error: {note}", err=True)
        sys.exit(1)
    click.echo(f"{service}: " + ("promoted." if promote else "aborted: traffic on stable, canaries stopped."))

"""`nomadmesh abort SERVICE`: end a release by hand, sending all traffic back to stable."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import target_options

if TYPE_CHECKING:
    from nomadmesh.deploy.target import Target


@click.command("abort")
@click.argument("service")
@target_options
def abort_command(service: str, target: Target) -> None:
    """Abort SERVICE's release: all traffic to the stable version at once, the Nomad deployment
    failed (its canaries stop; with auto_revert Nomad registers the previous version again), and
    the release's splitter and resolver subsets removed once no canary is registered.

    A running `nomadmesh release` notices (its next check-and-set write is refused) and stops.
    Exit 0: traffic on stable and the entries removed; 1: no release under way, or it could not finish.

    Example:

        nomadmesh abort invoice
    """
    from nomadmesh.cli.release_end import end_release

    end_release(service, target, promote=False)

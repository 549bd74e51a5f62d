"""`nomadmesh promote SERVICE`: end a release by hand, promoting its canaries."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import target_options

if TYPE_CHECKING:
    from nomadmesh.deploy.target import Target


@click.command("promote")
@click.argument("service")
@target_options
def promote_command(service: str, target: Target) -> None:
    """Promote SERVICE's canaries now: the release's split is removed, the Nomad deployment promoted
    and awaited, and the service-resolver given back as it was before the release. A running
    `nomadmesh release` notices and ends as promoted too (exit 0).

    Exit 0: promoted and the deployment successful; 1: no release under way, or it did not finish.

    Example:

        nomadmesh promote invoice
    """
    from nomadmesh.cli.release_end import end_release

    end_release(service, target, promote=True)

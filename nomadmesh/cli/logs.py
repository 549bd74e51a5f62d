"""`nomadmesh logs SERVICE`: a task's stdout (or stderr), optionally followed."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("logs")
@click.argument("service")
@target_options
@click.option("--task", default=None, help="Task to read.  [default: the service's own task]")
@click.option("--stderr", "use_stderr", is_flag=True, help="Read stderr instead of stdout.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until Ctrl-C.")
def logs_command(service: str, target: Target, task: str | None, use_stderr: bool, follow: bool) -> None:
    """Print the logs of SERVICE's newest running allocation.

    Example:

        nomadmesh logs order --stderr

        nomadmesh logs order --task connect-proxy-order -f
    """
    from nomadmesh.deploy.logs import pick_allocation
    from nomadmesh.deploy.nomad_api import NomadAPI

    api = NomadAPI(target)
    alloc_id, task_name = pick_allocation(api, service, task)
    stream = "stderr" if use_stderr else "stdout"
    if not follow:
        click.echo(api.logs(alloc_id, task_name, stream), nl=False)
        return
    try:
        for chunk in api.follow_logs(alloc_id, task_name, stream):
            click.echo(chunk, nl=False)
    except KeyboardInterrupt:
        pass

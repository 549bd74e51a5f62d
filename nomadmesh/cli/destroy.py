"""`nomadmesh destroy`: stop the jobs nomadmesh manages (never anyone else's)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("destroy")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@target_options
@click.option("--purge", is_flag=True, help="Also remove the jobs from Nomad's state.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def destroy_command(services: tuple[str, ...], target: Target, purge: bool, yes: bool) -> None:
    """Stop all managed jobs (or the SERVICEs named); asks first unless --yes.

    Jobs without nomadmesh's ownership meta are never stopped.

    Example:

        nomadmesh destroy --yes

        nomadmesh destroy order --purge
    """
    from nomadmesh.deploy.destroy import destroy, select_jobs
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.progress import PlainProgress

    api = NomadAPI(target)
    names = select_jobs(api.jobs(), services)
    if not names:
        click.echo("No jobs managed by nomadmesh.")
        return
    verb = "Purge" if purge else "Stop"
    if not yes and not _confirmed(f"{verb} {', '.join(names)} at {target.nomad.url}?"):
        sys.exit(1)
    destroy(api, names, purge, PlainProgress())


def _confirmed(question: str) -> bool:
    """Ask on a terminal; from a pipe, read one answer line; with no input at all, refuse."""
    if sys.stdin is None or sys.stdin.closed:
        answer = ""
    elif sys.stdin.isatty():
        return click.confirm(question, default=False) or _nothing()
    else:
        click.echo(f"{question} [y/N]: ", nl=False)
        answer = sys.stdin.readline()
        click.echo(answer.strip())
    if not answer:
        click.echo("Error: no input to confirm on; pass --yes to stop without asking.", err=True)
        return False
    return answer.strip().lower() in ("y", "yes") or _nothing()


def _nothing() -> bool:
    click.echo("Nothing stopped.")
    return False

"""`nomadmesh destroy`: stop the jobs nomadmesh manages (never anyone else's)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.env_jobs import env_job_names
from nomadmesh.cli.options import spec_options, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.definitions.model import Spec
    from nomadmesh.deploy.target import Target


@click.command("destroy")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@target_options
@spec_options
@click.option("--purge", is_flag=True, help="Also remove the jobs from Nomad's state.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def destroy_command(services: tuple[str, ...], target: Target, services_dir: Path, project_file: Path | None,
                    allow_external: tuple[str, ...], env: str | None, var: tuple[str, ...],
                    purge: bool, yes: bool) -> None:
    """Stop this project's jobs (or the SERVICEs named); asks first unless --yes.

    Without SERVICE names, the definitions say which project: its jobs (meta nomadmesh_project),
    orphans included, never another project's; with --env, that environment's. Without a
    definitions folder, every job nomadmesh manages (the question lists them). Jobs without
    nomadmesh's ownership meta are never stopped.

    Example:

        nomadmesh destroy --yes

        nomadmesh destroy order --purge

        nomadmesh destroy --env pr42 --purge --yes
    """
    from nomadmesh.deploy.destroy import destroy, project_jobs, select_jobs
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.progress import PlainProgress

    api = NomadAPI(target)
    live = api.jobs()
    if services:
        in_env = env_job_names(services_dir, project_file, allow_external, env, var)
        names = select_jobs([j for j in live if in_env is None or j.get("ID") in in_env], services)
    elif env is not None or services_dir.is_dir():
        spec = _spec(services_dir, project_file, allow_external, env, var)
        names = project_jobs(live, spec.project.name, [s.name for s in spec.services])
    else:  # no definitions here to say which project: every managed job, as the question lists them
        names = select_jobs(live)
    if not names:
        click.echo("No jobs managed by nomadmesh.")
        return
    verb = "Purge" if purge else "Stop"
    if not yes and not _confirmed(f"{verb} {', '.join(names)} at {target.nomad.url}?"):
        sys.exit(1)
    destroy(api, names, purge, PlainProgress())


def _spec(services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...], env: str | None,
          var: tuple[str, ...]) -> Spec:
    import os

    from nomadmesh.definitions import load_spec

    return load_spec(services_dir, project_file, allow_external, env=env, variables=var, environ=os.environ)


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

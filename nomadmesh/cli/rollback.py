"""`nomadmesh rollback`: put the jobs and config entries of an earlier release back, plan first."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import env_option, json_option, project_option, services_option, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.releases import Release
    from nomadmesh.deploy.target import Target


@click.command("rollback")
@target_options
@services_option
@project_option
@env_option
@click.option("--to", "to", type=click.IntRange(min=1), default=None, metavar="N",
              help="The release to go back to.  [default: the one before the latest]")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.option("--detach", is_flag=True, help="Revert and return; do not wait for the deployments.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for the reverted jobs' deployments.")
@json_option
def rollback_command(target: Target, services_dir: Path, project_file: Path | None, env: str | None,
                     to: int | None, yes: bool, detach: bool, timeout_s: float, as_json: bool) -> None:
    """Go back to release N: revert its jobs and restore its config entries, after showing the plan.

    Jobs are reverted with Nomad's job revert (a copy of the old version becomes the newest
    version); the release's service-intentions and service-defaults entries are written back with
    check-and-set. Anything changed since the plan is refused, never overwritten. The rollback is
    recorded as a new release. Exit 0: done and healthy (or nothing to do); 1: cannot or failed
    (what was applied is listed); 2: bad input; 130: interrupted (what was applied is recorded).

    Example:

        nomadmesh rollback

        nomadmesh rollback --to 3 --yes
    """
    from nomadmesh.deploy.consul_api import ConsulAPI
    from nomadmesh.deploy.errors import DeployError
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.releases import ReleaseInputError, ReleaseStore, project_of, record
    from nomadmesh.deploy.rollback import apply_rollback, plan_lines, read_rollback, to_dict
    from nomadmesh.progress import make_progress

    project = project_of(services_dir, project_file, env)
    nomad, consul = NomadAPI(target), ConsulAPI(target)
    releases = ReleaseStore(consul, project).all()
    goal = _choose(releases, to, project, target.consul.url)
    latest = releases[-1]
    plan = read_rollback(nomad, consul, goal, latest)
    report = to_dict(plan)
    if plan.problems:
        raise DeployError(f"cannot roll back to release {goal.number}, nothing was changed: "
                          + "; ".join(plan.problems))
    if plan.empty:
        click.echo(json.dumps({**report, "applied": [], "release": None}, indent=2) if as_json else
                   f"Nothing to roll back: the jobs and entries already match release {goal.number}.")
        return
    if not as_json:
        click.echo("\n".join(plan_lines(plan)))
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise ReleaseInputError("rollback asks for confirmation and there is no terminal to ask on: "
                                    "pass --yes")
        if not click.confirm(f"Roll back to release {goal.number}?", default=False):
            click.echo("Nothing rolled back.")
            sys.exit(1)
    progress = make_progress(as_json)
    try:
        outcome = apply_rollback(nomad, consul, plan, progress, timeout_s=timeout_s, detach=detach)
    finally:
        progress.close()
    release = None
    if outcome.applied:  # what is live now, even when the rollback stopped midway
        release, _ = record(nomad, consul, project, goal.jobs, kind="rollback", rolled_back_to=goal.number,
                            entry_names=goal.entries)
    if as_json:
        click.echo(json.dumps({**report, "applied": outcome.applied, "not_applied": outcome.not_applied,
                               "error": outcome.error, "jobs_watched": [r.to_dict() for r in outcome.results],
                               "release": release.number if release else None}, indent=2))
    else:
        if outcome.error:
            click.echo(f"Error: {outcome.error}", err=True)
            click.echo("Applied: " + ("; ".join(outcome.applied) or "nothing"), err=True)
            click.echo("Not applied: " + "; ".join(outcome.not_applied), err=True)
        for r in outcome.results:
            if not r.ok and r.error:
                click.echo(f"Error: {r.job}: {r.error}", err=True)
        if release is not None:
            click.echo(f"Recorded release {release.number} (rollback to {goal.number}).")
    sys.exit(0 if outcome.ok else 130 if outcome.interrupted else 1)


def _choose(releases: list[Release], to: int | None, project: str, where: str) -> Release:
    from nomadmesh.deploy.releases import ReleaseInputError

    if not releases:
        raise ReleaseInputError(f"no releases recorded for project {project!r} at {where}: nothing to roll back")
    if to is None:
        if len(releases) < 2:
            raise ReleaseInputError(f"release {releases[0].number} is the only release of project {project!r}: "
                                    "nothing to roll back to")
        return releases[-2]
    found = next((r for r in releases if r.number == to), None)
    if found is None:
        known = ", ".join(str(r.number) for r in releases)
        raise ReleaseInputError(f"--to: project {project!r} has no release {to} (releases: {known})")
    return found

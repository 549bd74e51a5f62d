"""`nomadmesh history`: the project's releases, as recorded in the target (Consul KV)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import env_option, json_option, project_option, services_option, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.releases import Release
    from nomadmesh.deploy.target import Target


@click.command("history")
@target_options
@services_option
@project_option
@env_option
@json_option
def history_command(target: Target, services_dir: Path, project_file: Path | None, env: str | None,
                    as_json: bool) -> None:
    """List the project's releases: number, time, who, job versions and config entries.

    Every deploy that changes the target records one (in Consul KV, under
    nomadmesh/<project>/releases/), and so does every rollback. The project is nomadmesh.json's
    `name`, else `default` (with --env: `<name>.<env>`).

    Example:

        nomadmesh history

        nomadmesh history --json
    """
    from nomadmesh.deploy.consul_api import ConsulAPI
    from nomadmesh.deploy.releases import ReleaseStore, project_of

    project = project_of(services_dir, project_file, env)
    releases = ReleaseStore(ConsulAPI(target), project).all()
    if as_json:
        click.echo(json.dumps({"project": project, "releases": [json.loads(r.to_json()) for r in releases]},
                              indent=2))
        return
    if not releases:
        click.echo(f"No releases recorded for project {project!r} at {target.consul.url}.")
        return
    for r in releases:
        click.echo(_line(r))


def _line(r: Release) -> str:
    kind = f"rollback to {r.rolled_back_to}" if r.kind == "rollback" else r.kind
    jobs = " ".join(f"{name}@{version}" for name, version in sorted(r.jobs.items())) or "-"
    entries = ", ".join(r.present_entries) or "-"
    return f"{r.number:>4}  {r.time}  {r.who}  {kind}\n      jobs: {jobs}\n      entries: {entries}"

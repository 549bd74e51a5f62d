"""`nomadmesh plan`: what deploy would change, with Nomad's own diff; CI exit codes."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import json_option, reset_overrides_option, spec_options, target_options
from nomadmesh.errors import NomadMeshError

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target

EXIT_NO_CHANGES, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2


@click.command("plan")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@spec_options
@target_options
@reset_overrides_option
@json_option
def plan_command(services: tuple[str, ...], services_dir: Path, project_file: Path | None,
                 allow_external: tuple[str, ...],
                 env: str | None, var: tuple[str, ...], target: Target, reset_overrides: bool, as_json: bool) -> None:
    """Show what `deploy` would do (all services, or the SERVICEs named), without doing it.

    Per service: the job change and the config entries deploy writes (intention sources with
    their L7 permissions, service-defaults, resolvers, splitters, routers), overrides someone
    else wrote that deploy keeps, and entries a running release holds.
    Each live job is compared with the rendered one by Nomad's own plan diff, so a change made
    outside nomadmesh (a count scaled by hand, an env var added in the UI) shows as drift, with
    its fields; `deploy` registers the definition again. Without SERVICE names, the project's
    orphans are listed too: its jobs (meta nomadmesh_project) that no definition renders any
    more; `deploy --prune` stops them.

    Exit 0: no changes; 1: changes (jobs, entries, drift or orphans); 2: bad input or error (like
    `nomad job plan`).

    Example:

        nomadmesh plan

        nomadmesh plan order --json
    """
    from nomadmesh.deploy.difftext import format_plan
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import live_orphans, live_plan, nomad_plans
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.target import consul_client, for_namespace
    from nomadmesh.mesh.entry_plan import format_entries

    try:
        rendered = load_jobs(services_dir, project_file, services, allow_external,
            env=env, variables=var, environ=os.environ)
        target = for_namespace(target, rendered.namespace)
        api = NomadAPI(target)
        plan = live_plan(api, rendered, consul_client(target), reset_overrides)
        answers = nomad_plans(api, plan)
        orphans = live_orphans(api, rendered)
    except NomadMeshError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_ERROR)
    for w in rendered.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        click.echo(json.dumps({"changes": plan.has_changes or bool(orphans), "jobs": [
            {"job": c.name, "action": c.action, "reason": c.reason, "live_version": c.live_version,
             "job_modify_index": c.modify_index, "diff": (answers.get(c.name) or {}).get("Diff"),
             "placements": ((answers.get(c.name) or {}).get("Annotations") or {}).get("DesiredTGUpdates"),
             "failed_placements": (answers.get(c.name) or {}).get("FailedTGAllocs")} for c in plan.changes],
            "entries": [e.to_dict() for e in plan.entries if e.action != "noop"],
            "project": rendered.project, "orphans": orphans}, indent=2))
    else:
        for c in plan.changes:
            if c.action == "noop":
                click.echo(f"= {c.name}: unchanged (version {c.live_version})")
            elif c.action == "conflict":
                click.echo(f"! {c.name}: {c.reason}")
            else:
                click.echo(f"{'+' if c.action == 'create' else '~'} {c.name}: {c.action} ({c.reason})")
                for line in format_plan(c.name, answers[c.name]):
                    click.echo(f"    {line}")
            for line in format_entries(e for e in plan.entries if e.name == c.name):
                click.echo(f"    {line}")
        others = [e for e in plan.entries if e.name not in {c.name for c in plan.changes}]
        if any(e.action != "noop" for e in others):
            click.echo("config entries of services without a job here:")
            for line in format_entries(others):
                click.echo(f"    {line}")
        for name in orphans:
            click.echo(f"- {name}: orphan (project {rendered.project!r}, no definition renders it; "
                       "`deploy --prune` stops it)")
    if plan.conflicts:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if plan.has_changes or orphans else EXIT_NO_CHANGES)

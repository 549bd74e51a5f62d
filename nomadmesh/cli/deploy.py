"""`nomadmesh deploy`: register the jobs in dependency order and watch them become healthy."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import json_option, reset_overrides_option, spec_options, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("deploy")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@spec_options
@target_options
@click.option("--detach", is_flag=True, help="Register and return; do not wait for the deployments.")
@reset_overrides_option
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for all deployments before giving up (Nomad keeps deploying).")
@json_option
def deploy_command(services: tuple[str, ...], services_dir: Path, project_file: Path | None,
                   allow_external: tuple[str, ...], env: str | None, var: tuple[str, ...], target: Target,
                   detach: bool, reset_overrides: bool, timeout_s: float, as_json: bool) -> None:
    """Deploy all services (or the SERVICEs named): upstreams first, unchanged ones skipped.

    The project's intentions (an allow per declared upstream, nomadmesh.json rules) and
    service-defaults are written before the jobs that need them; allows no longer declared are
    removed after the jobs are healthy. One deploy per project at a time.

    Exit 0: all healthy; 1: a job failed (reason and log tail shown); 2: bad input.

    Example:

        nomadmesh deploy

        nomadmesh deploy tax --json
    """
    from nomadmesh.deploy.apply import apply
    from nomadmesh.deploy.entries import EntryWriter, deploy_lock
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import live_plan
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.releases import record_deploy
    from nomadmesh.deploy.target import consul_client
    from nomadmesh.progress import make_progress

    rendered = load_jobs(services_dir, project_file, services, allow_external,
                         env=env, variables=var, environ=os.environ)
    for w in rendered.warnings:
        click.echo(f"warning: {w}", err=True)
    api, consul = NomadAPI(target), consul_client(target)
    project = rendered.policy.project
    with deploy_lock(consul, project):
        plan = live_plan(api, rendered, consul, reset_overrides)
        progress = make_progress(as_json)
        try:
            report = apply(api, plan, progress, detach=detach, timeout_s=timeout_s,
                           entries=EntryWriter(consul, project))
        finally:
            progress.close()
        # Each deploy that changed the target is recorded as a release in the target (`history`, `rollback`).
        release, why_not = record_deploy(target, project, plan, report)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "release": release.number if release else None}, indent=2))
    else:
        for r in report.results:
            if not r.ok and r.error and r.error != "watch cancelled":
                click.echo(f"Error: {r.job}: {r.error}", err=True)
        click.echo(f"Recorded release {release.number}." if release else f"No new release: {why_not}.",
                   err=release is None and why_not.startswith("release not recorded"))
    if report.interrupted:
        sys.exit(130)
    sys.exit(0 if report.ok else 1)

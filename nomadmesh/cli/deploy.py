"""`nomadmesh deploy`: register the jobs in dependency order and watch them become healthy."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.options import json_option, spec_options, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("deploy")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@spec_options
@target_options
@click.option("--detach", is_flag=True, help="Register and return; do not wait for the deployments.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for all deployments before giving up (Nomad keeps deploying).")
@click.option("--no-verify", is_flag=True,
              help="Do not check the declared upstream edges (intentions and healthy instances) afterwards.")
@json_option
def deploy_command(services: tuple[str, ...], services_dir: Path, project_file: Path | None,
                   allow_external: tuple[str, ...], env: str | None, var: tuple[str, ...], target: Target,
                   detach: bool, timeout_s: float, no_verify: bool, as_json: bool) -> None:
    """Deploy all services (or the SERVICEs named): upstreams first, unchanged ones skipped.

    Once the deployments are healthy, every declared upstream edge of the deployed services is
    verified: the intentions let the caller in (as `intent check` decides; an L7 source counts
    when some requests get through) and the destination has a healthy Connect instance. A
    failing edge is printed with the rule that decided it.

    Exit 0: all healthy and every edge works; 1: a job failed (reason and log tail shown) or an
    edge does not work; 2: bad input.

    Example:

        nomadmesh deploy

        nomadmesh deploy tax --json
    """
    from nomadmesh.deploy.apply import apply
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import live_plan
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.progress import make_progress

    rendered = load_jobs(services_dir, project_file, services, allow_external,
                         env=env, variables=var, environ=os.environ)
    for w in rendered.warnings:
        click.echo(f"warning: {w}", err=True)
    api = NomadAPI(target)
    plan = live_plan(api, rendered)
    progress = make_progress(as_json)
    try:
        report = apply(api, plan, progress, detach=detach, timeout_s=timeout_s)
    finally:
        progress.close()
    edges = []
    if report.ok and not detach and not no_verify:
        from nomadmesh.deploy.target import consul_client
        from nomadmesh.deploy.verify import edges_from_jobs, verify_edges

        edges = verify_edges(consul_client(target), edges_from_jobs(c.job for c in plan.changes))
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "edges": [e.to_dict() for e in edges],
                                "edges_ok": all(e.ok for e in edges)}, indent=2))
    else:
        for r in report.results:
            if not r.ok and r.error and r.error != "watch cancelled":
                click.echo(f"Error: {r.job}: {r.error}", err=True)
        if edges:
            click.echo("Upstream edges:")
        for e in edges:
            click.echo(f"  {'ok  ' if e.ok else 'FAIL'} {e.source} -> {e.destination}: {e.message}")
    if report.interrupted:
        sys.exit(130)
    sys.exit(0 if report.ok and all(e.ok for e in edges) else 1)

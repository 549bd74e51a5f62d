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
@click.option("--prune", is_flag=True,
              help="Also stop this project's orphans: its jobs no definition renders any more (needs a project "
                   "name in nomadmesh.json).")
@click.option("--no-verify", is_flag=True,
              help="Do not check the declared upstream edges (intentions and healthy instances) afterwards.")
@json_option
def deploy_command(services: tuple[str, ...], services_dir: Path, project_file: Path | None,
                   allow_external: tuple[str, ...], env: str | None, var: tuple[str, ...], target: Target,
                   detach: bool, reset_overrides: bool, timeout_s: float, prune: bool, no_verify: bool,
                   as_json: bool) -> None:
    """Deploy all services (or the SERVICEs named): upstreams first, unchanged ones skipped.

    The project's intentions (an allow per declared upstream, nomadmesh.json rules),
    service-defaults and service.json `traffic` (service-resolver, -splitter, -router) are
    written before the jobs that need them; what is no longer declared is removed after the
    jobs are healthy. One deploy per project at a time.

    Once the deployments are healthy, every declared upstream edge of the deployed services is
    verified: the intentions let the caller in (as `intent check` decides; an L7 source counts
    when some requests get through) and the destination has a healthy Connect instance. A
    failing edge is printed with the rule that decided it.

    Changes made outside nomadmesh (drift, see `plan`) are undone by registering the definition
    again. Orphans (this project's jobs that no definition renders any more) are listed, and
    stopped with --prune once the deployments succeeded; another project's jobs never are.

    Exit 0: all healthy and every edge works; 1: a job failed (reason and log tail shown) or an
    edge does not work; 2: bad input.

    Example:

        nomadmesh deploy

        nomadmesh deploy tax --json
    """
    from nomadmesh.definitions.project import DEFAULT_PROJECT, is_named
    from nomadmesh.deploy.apply import apply
    from nomadmesh.deploy.destroy import destroy
    from nomadmesh.deploy.entries import EntryWriter, deploy_lock
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import live_orphans, live_plan
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.releases import record_deploy
    from nomadmesh.deploy.target import consul_client, for_namespace
    from nomadmesh.progress import make_progress

    rendered = load_jobs(services_dir, project_file, services, allow_external,
                         env=env, variables=var, environ=os.environ)
    for w in rendered.warnings:
        click.echo(f"warning: {w}", err=True)
    if prune and not rendered.complete:
        raise click.UsageError("--prune needs every service (no SERVICE names): orphans are what none renders")
    if prune and not is_named(rendered.project):
        raise click.UsageError(f"--prune needs a project name: set \"name\" in nomadmesh.json (projects without "
                               f"one all share the name {DEFAULT_PROJECT!r} and would prune each other's jobs)")
    target = for_namespace(target, rendered.namespace)
    api, consul = NomadAPI(target), consul_client(target)
    project = rendered.policy.project
    pruned: list[str] = []
    with deploy_lock(consul, project):
        plan = live_plan(api, rendered, consul, reset_overrides)
        orphans = live_orphans(api, rendered)
        progress = make_progress(as_json)
        try:
            report = apply(api, plan, progress, detach=detach, timeout_s=timeout_s,
                           entries=EntryWriter(consul, project))
            if prune and orphans and report.ok:  # only once the definitions' jobs are in place
                pruned = destroy(api, orphans, purge=False, progress=progress)
        finally:
            progress.close()
        # Each deploy that changed the target is recorded as a release in the target (`history`, `rollback`).
        release, why_not = record_deploy(target, project, plan, report)
    edges = []
    if report.ok and not detach and not no_verify:
        from nomadmesh.deploy.verify import edges_from_jobs, verify_edges

        edges = verify_edges(consul, edges_from_jobs(c.job for c in plan.changes))
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "release": release.number if release else None,
                               "orphans": orphans, "pruned": pruned, "edges": [e.to_dict() for e in edges],
                               "edges_ok": all(e.ok for e in edges)}, indent=2))
    else:
        for r in report.results:
            if not r.ok and r.error and r.error != "watch cancelled":
                click.echo(f"Error: {r.job}: {r.error}", err=True)
        left = [o for o in orphans if o not in pruned]
        if left:
            click.echo(f"Orphans of project {rendered.project!r} (no definition renders them): {', '.join(left)}; "
                       "`deploy --prune` stops them")
        if edges:
            click.echo("Upstream edges:")
        for e in edges:
            click.echo(f"  {'ok  ' if e.ok else 'FAIL'} {e.source} -> {e.destination}: {e.message}")
        click.echo(f"Recorded release {release.number}." if release else f"No new release: {why_not}.",
                   err=release is None and why_not.startswith("release not recorded"))
    if report.interrupted:
        sys.exit(130)
    sys.exit(0 if report.ok and all(e.ok for e in edges) else 1)

"""`nomadmesh status`: the managed jobs, their allocations and where to call them."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.env_jobs import env_job_names
from nomadmesh.cli.options import json_option, spec_options, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("status")
@target_options
@spec_options
@json_option
def status_command(target: Target, services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...],
                   env: str | None, var: tuple[str, ...], as_json: bool) -> None:
    """Show each job nomadmesh manages: allocations, health, sidecar and the address to call.

    Then each Connect upstream edge the running jobs declare, verified as `deploy` does: the
    intentions let the caller in and the destination has a healthy Connect instance.
    With --env, only that environment's jobs (the definitions are read for their names).

    Exit 0: every managed job is healthy (or stopped on purpose) and every edge works; 1 otherwise.

    Example:

        nomadmesh status

        nomadmesh status --json
    """
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.status import collect_status
    from nomadmesh.deploy.target import consul_client
    from nomadmesh.deploy.verify import verify_edges

    in_env = env_job_names(services_dir, project_file, allow_external, env, var)
    jobs = [j for j in collect_status(NomadAPI(target)) if in_env is None or j.job in in_env]
    declared = sorted({e for j in jobs if not j.stopped for e in j.edges})
    edges = verify_edges(consul_client(target), declared, health_wait_s=0) if declared else []
    failing = any(j.problem for j in jobs) or not all(e.ok for e in edges)
    if as_json:
        checked = {(e.source, e.destination): e.to_dict() for e in edges}
        click.echo(json.dumps([{**j.to_dict(), "edges": [checked[e] for e in j.edges if e in checked]}
                               for j in jobs], indent=2))
        sys.exit(1 if failing else 0)
    if not jobs:
        click.echo("No jobs managed by nomadmesh.")
        return
    for j in jobs:
        healthy = sum(1 for a in j.allocations if a.healthy)
        click.echo(f"{j.job}: {j.status}, version {j.version}, deployment {j.deployment or '-'}, "
                   f"healthy {healthy}/{len(j.allocations)}" + (f": {j.problem}" if j.problem else ""))
        for a in j.allocations:
            tasks = ", ".join(f"{t} {s}" for t, s in a.tasks.items())
            health = {True: "healthy", False: "unhealthy", None: "health unknown"}[a.healthy]
            click.echo(f"  alloc {a.id[:8]} {a.status} ({health}): {tasks}")
        for addr in j.addresses:
            click.echo(f"  call: curl http://{addr}/")
    if edges:
        click.echo("Upstream edges:")
    for e in edges:
        click.echo(f"  {'ok  ' if e.ok else 'FAIL'} {e.source} -> {e.destination}: {e.message}")
    sys.exit(1 if failing else 0)

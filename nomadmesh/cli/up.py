"""`nomadmesh up`: an agent if none answers, then the services deployed, then how to call them."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nomadmesh.cli.options import spec_options, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("up")
@spec_options
@target_options
@click.option("--grpc-port", type=click.IntRange(0, 65535), envvar="NOMADMESH_GRPC_PORT", default=None,
              help="Also open this xDS TCP port on an agent `up` starts (see `agent --grpc-port`).  "
                   "[default: $NOMADMESH_GRPC_PORT, else off]")
@click.option("--dns-port", type=click.IntRange(-1, 65535), envvar="NOMADMESH_DNS_PORT", default=8600,
              help="The DNS port of an agent `up` starts (see `agent --dns-port`; -1: none).  "
                   "[default: $NOMADMESH_DNS_PORT, else 8600]")
@click.option("--default-policy", type=click.Choice(["allow", "deny"]), default="deny", show_default=True,
              help="Intention default policy of an agent `up` starts: deny (zero trust; the declared upstreams "
                   "are allowed) or allow (every call allowed unless denied).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds to wait for the deployments.")
def up_command(services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...], env: str | None,
               var: tuple[str, ...], target: Target, grpc_port: int | None, dns_port: int, default_policy: str,
               timeout_s: float) -> None:
    """Start a dev agent unless Nomad answers at the target, deploy the services, say how to call them.

    The agent's data dir, pid file and log go to ./.nomadmesh/; `nomadmesh down` stops it.

    Example:

        nomadmesh up

        nomadmesh up --services ./services --nomad-addr http://127.0.0.1:14646

        nomadmesh up --env pr42 --var image_tag=v2
    """
    from nomadmesh.deploy.apply import apply
    from nomadmesh.deploy.entries import EntryWriter, deploy_lock
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import live_plan
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.releases import record_deploy
    from nomadmesh.deploy.status import collect_status
    from nomadmesh.deploy.target import consul_client
    from nomadmesh.deploy.up import ensure_agent
    from nomadmesh.progress import make_progress

    # Bad input (definitions, --env, --var) fails here, before an agent is started.
    rendered = load_jobs(services_dir, project_file, (), allow_external, env=env, variables=var, environ=os.environ)
    for warning in rendered.warnings:
        click.echo(f"warning: {warning}", err=True)
    api = NomadAPI(target)
    click.echo(ensure_agent(api, target, Path.cwd(), grpc_port, default_policy, dns_port=dns_port))
    consul = consul_client(target)
    progress = make_progress()
    try:
        with deploy_lock(consul, rendered.policy.project):
            plan = live_plan(api, rendered, consul)
            report = apply(api, plan, progress, timeout_s=timeout_s,
                           entries=EntryWriter(consul, rendered.policy.project))
            record_deploy(target, rendered.policy.project, plan, report)  # a release, as `deploy` records
    finally:
        progress.close()
    for r in report.results:
        if not r.ok and r.error and r.error != "watch cancelled":
            click.echo(f"Error: {r.job}: {r.error}", err=True)
    if not report.ok:
        sys.exit(130 if report.interrupted else 1)
    entry = _entry(collect_status(api), rendered.order, {c.name: c.job for c in plan.changes})
    if entry:
        click.echo(f"Call {entry[0]}:  curl http://{entry[1]}/")
    click.echo("Stop everything with: nomadmesh down")


def _gateway_targets(job: dict[str, Any]) -> list[str]:
    """The services behind an ingress gateway job's listeners (none for other jobs)."""
    return [t["Name"] for tg in job.get("TaskGroups") or [] for svc in tg.get("Services") or []
            for lst in (((svc.get("Connect") or {}).get("Gateway") or {}).get("Ingress") or {}).get("Listeners") or []
            for t in lst.get("Services") or []]


def _entry(jobs: list[Any], order: tuple[str, ...], specs: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """What to call from the host: an ingress gateway's published listener (the mesh's front door),
    else the published address of `order`, else of the last service deployed that has one."""
    addresses = {j.job: j.addresses[0] for j in jobs if j.addresses}
    for name in order:
        targets = _gateway_targets(specs.get(name) or {})
        if targets and name in addresses:
            return f"{', '.join(targets)} through the {name} gateway", addresses[name]
    for name in ("order", *reversed(order)):
        if name in addresses:
            return name, addresses[name]
    return None

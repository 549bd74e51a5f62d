"""`nomadmesh release SERVICE`: the new version as canaries, traffic shifted step by step, promoted or rolled back."""
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
    from nomadmesh.release.controller import ReleaseReport


@click.command("release")
@click.argument("service")
@spec_options
@target_options
@click.option("--steps", default="5,25,50,100", show_default=True, metavar="P,P,...",
              help="The canary's share of traffic at each step, in percent, rising to 100.")
@click.option("--interval", default="30s", show_default=True, metavar="DURATION",
              help="How long each step runs before its figures are judged.")
@click.option("--max-error-rate", default="1%", show_default=True, metavar="RATE",
              help="The canary's highest share of 5xx answers (\"1%\" or 0.01).")
@click.option("--max-p99", default=None, metavar="DURATION",
              help="The canary's highest p99 latency.  [default: not checked]")
@click.option("--min-requests", type=int, default=20, show_default=True,
              help="Canary requests a step needs before it is judged (fewer: the step waits another interval).")
@click.option("--metrics-url", default=None, metavar="URL",
              help="Read the figures from this Prometheus (scraping the sidecars' Envoy metrics, each series "
                   "labelled consul_service_id) instead of the dev agent's sidecar stats.")
@json_option
def release_command(service: str, services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...],
                    env: str | None, var: tuple[str, ...], target: Target, steps: str, interval: str,
                    max_error_rate: str, max_p99: str | None, min_requests: int, metrics_url: str | None,
                    as_json: bool) -> None:
    """Release SERVICE's changed definition through the mesh: canaries first, traffic shifted step by step.

    The new version is registered as deploy would (the job needs update.canary and an http
    protocol); Nomad places its canaries beside the running version. A service-resolver with
    `stable`/`canary` subsets and a service-splitter (100% stable until the canaries are healthy)
    then move the canary's share through --steps. After each --interval the canary's and the stable
    version's requests, 5xx share and p99 are read from their sidecars' Envoy stats. Within the
    thresholds the release goes on and finally promotes the Nomad deployment and removes the split;
    beyond them all traffic goes back to stable at once, the deployment is failed (Nomad reverts it
    with auto_revert) and the figures that tripped it are printed.

    Figures are read through the dev agent (`/v1/nomadmesh/sidecar/<id>/stats`), or with
    --metrics-url from a Prometheus scraping the sidecars (see the README for its scrape config);
    without either every step waits and the release rolls back for want of figures.

    Exit 0: promoted; 1: rolled back or refused; 2: bad input; 130: interrupted (traffic on stable).

    Example:

        nomadmesh release invoice --steps 10,50,100 --interval 30s --max-error-rate 1%
    """
    from nomadmesh.deploy.consul_api import ConsulAPI
    from nomadmesh.deploy.entries import EntryWriter, deploy_lock
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.target import for_namespace
    from nomadmesh.progress import make_progress
    from nomadmesh.release.controller import Controller
    from nomadmesh.release.options import parse_metrics_url, parse_options
    from nomadmesh.release.prometheus import PrometheusCounters
    from nomadmesh.release.target import ConsulSide

    options = parse_options(steps, interval, max_error_rate, max_p99, min_requests)
    metrics_url = parse_metrics_url(metrics_url) if metrics_url is not None else None
    rendered = load_jobs(services_dir, project_file, (service,), allow_external, env=env, variables=var,
                         environ=os.environ)
    target = for_namespace(target, rendered.namespace)
    nomad, consul = NomadAPI(target), ConsulAPI(target)
    project = rendered.policy.project
    with deploy_lock(consul.sdk, project):  # a release is a deploy: one per project at a time
        progress = make_progress(as_json)
        try:
            metrics = PrometheusCounters(metrics_url) if metrics_url else None
            report = Controller(nomad, ConsulSide(consul), EntryWriter(consul.sdk, project), progress, options,
                                counters=metrics, figures_from=f"Prometheus {metrics_url}" if metrics_url else ""
                                ).run(rendered, service)
        finally:
            progress.close()
    _print(report, as_json)
    sys.exit(report.exit_code)


def _print(report: ReleaseReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for step in report.steps:
        click.echo(f"  {step.percent:>3}%  {step.verdict.action:<8}  canary: {step.canary.describe()}; "
                   f"stable: {step.stable.describe()}")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if report.outcome == "promoted":
        click.echo(f"Released {report.release_id}: promoted. {report.reason}")
    else:
        click.echo(f"Release {report.release_id} {report.outcome}: {report.reason}", err=True)

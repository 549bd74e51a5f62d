"""`nomadmesh ui`: serve the web UI locally against any Nomad + Consul (only their HTTP APIs)."""
from __future__ import annotations

from pathlib import Path

import click

from nomadmesh.cli.options import env_option, project_option, target_options
from nomadmesh.deploy.target import Target


@click.command("ui")
@target_options
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address the UI listens on.")
@click.option("--port", default=8600, show_default=True, type=click.IntRange(0, 65535),
              help="Port the UI listens on (0: any free port).")
@click.option("--metrics-url", metavar="URL", envvar="NOMADMESH_METRICS_URL",
              help="Prometheus base URL that scrapes the sidecars' Envoy metrics (Consul's "
                   "envoy_prometheus_bind_addr): traffic on every edge. Without it, only the dev agent has figures.")
@click.option("--services", "services_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None, help="Service definitions folder: the Validations page then also shows what `plan` "
                                 "reports (drift, changed jobs, orphans).")
@project_option
@env_option
def ui_command(target: Target, bind: str, port: int, metrics_url: str | None, services_dir: Path | None,
               project_file: Path | None, env: str | None) -> None:
    """Serve the web UI (services, sidecars, intentions, topology, validations; live) until Ctrl-C.

    The dev agent serves the same UI at http://127.0.0.1:8500/ui/ (without --services' plan).

    Example:

        nomadmesh ui --consul-addr http://10.0.0.5:8500 --nomad-addr http://10.0.0.5:4646

        nomadmesh ui --services ./services
    """
    from nomadmesh.ui.app import serve_ui
    from nomadmesh.ui.validations import Definitions

    if (project_file or env) and services_dir is None:
        raise click.UsageError("--project and --env describe the --services folder: give --services too")
    definitions = Definitions(services_dir, project_file, env) if services_dir else None
    serve_ui(target, bind, port, metrics_url=metrics_url, definitions=definitions, on_ready=lambda url: click.echo(
        f"nomadmesh UI on {url} (Consul {target.consul.url}, Nomad {target.nomad.url}); Ctrl-C stops it", err=True))

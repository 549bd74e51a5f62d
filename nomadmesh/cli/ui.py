"""`nomadmesh ui`: serve the web UI locally against any Nomad + Consul (only their HTTP APIs)."""
from __future__ import annotations

import click

from nomadmesh.cli.options import target_options
from nomadmesh.deploy.target import Target


@click.command("ui")
@target_options
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address the UI listens on.")
@click.option("--port", default=8600, show_default=True, type=click.IntRange(0, 65535),
              help="Port the UI listens on (0: any free port).")
@click.option("--metrics-url", metavar="URL", envvar="NOMADMESH_METRICS_URL",
              help="Prometheus base URL that scrapes the sidecars' Envoy metrics (Consul's "
                   "envoy_prometheus_bind_addr): traffic on every edge. Without it, only the dev agent has figures.")
def ui_command(target: Target, bind: str, port: int, metrics_url: str | None) -> None:
    """Serve the web UI (services, sidecars, intentions, topology; live) until Ctrl-C.

    The dev agent serves the same UI at http://127.0.0.1:8500/ui/.

    Example:

        nomadmesh ui --consul-addr http://10.0.0.5:8500 --nomad-addr http://10.0.0.5:4646
    """
    from nomadmesh.ui.app import serve_ui

    serve_ui(target, bind, port, metrics_url=metrics_url, on_ready=lambda url: click.echo(
        f"nomadmesh UI on {url} (Consul {target.consul.url}, Nomad {target.nomad.url}); Ctrl-C stops it", err=True))

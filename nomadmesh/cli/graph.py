"""`nomadmesh graph`: print the mesh (services and their upstream edges)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.intent import default_policy_option
from nomadmesh.cli.options import spec_options, target_options
from nomadmesh.mesh.graph import FORMATS, RENDERERS, build_graph

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.command("graph")
@spec_options
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="mermaid", show_default=True, help="Output format."
)
@click.option("--verdicts", is_flag=True,
              help="Ask Consul for the intentions and label each edge allow, deny or per-request (L7).")
@default_policy_option
@target_options
def graph_command(
    target: Target, services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...],
    env: str | None, var: tuple[str, ...], fmt: str,
    verdicts: bool, default_policy: str | None,
) -> None:
    """Print the services as nodes and their upstreams as edges labelled with local_bind_port.

    With --verdicts each edge also shows what Consul's intentions decide for it (denied edges are
    dashed); without it the graph is drawn from the definitions alone, with no network.
    Invalid definitions are reported like `nomadmesh validate` does (exit 2).

    Example:

        nomadmesh graph --verdicts --format dot | dot -Tsvg > mesh.svg
    """
    from nomadmesh.definitions import load_spec

    spec = load_spec(services_dir, project_file, allow_external, env=env, variables=var, environ=os.environ)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    graph = build_graph(spec)
    if verdicts:
        from nomadmesh.deploy import intentions as di
        from nomadmesh.deploy.target import consul_client
        from nomadmesh.mesh.check import verdicts as edge_verdicts

        consul = consul_client(target)
        policy = di.load_default_policy(consul, default_policy)
        graph = graph.with_verdicts(edge_verdicts(spec, di.list_intentions(consul), policy.allow))
    click.echo(RENDERERS[fmt](graph), nl=False)

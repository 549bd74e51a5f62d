"""`nomadmesh graph`: print the mesh (services and their upstream edges)."""
from __future__ import annotations

from pathlib import Path

import click

from nomadmesh.cli.options import spec_options
from nomadmesh.mesh.graph import FORMATS, RENDERERS, build_graph


@click.command("graph")
@spec_options
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="mermaid", show_default=True, help="Output format."
)
def graph_command(services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...], fmt: str) -> None:
    """Print the services as nodes and their upstreams as edges labelled with local_bind_port.

    Invalid definitions are reported like `nomadmesh validate` does (exit 2).

    Example:

        nomadmesh graph --format dot | dot -Tsvg > mesh.svg
    """
    from nomadmesh.spec import load_spec

    spec = load_spec(services_dir, project_file, allow_external)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(RENDERERS[fmt](build_graph(spec)), nl=False)

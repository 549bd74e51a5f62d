"""`nomadmesh render`: service definitions → one Nomad job file per service."""
from __future__ import annotations

from pathlib import Path

import click

from nomadmesh.render import FORMATS, render, write_jobs

# nomadmesh/cli/options.py (shared --services etc.) did not exist when this was written;
# these options are local until it does.


@click.command("render")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@click.option(
    "--services",
    "services_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="services",
    show_default=True,
    help="Folder holding <name>/service.json definitions.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="jobs",
    show_default=True,
    help="Folder the job files are written to.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="hcl",
    show_default=True,
    help="hcl: jobspec files; json: the HTTP API's {\"Job\": ...} body.",
)
@click.option(
    "--allow-external",
    multiple=True,
    metavar="NAME",
    help="An upstream defined outside this folder (repeatable).",
)
def render_command(
    services: tuple[str, ...], services_dir: Path, out_dir: Path, fmt: str, allow_external: tuple[str, ...]
) -> None:
    """Render one Nomad job per service (all, or the SERVICEs named).

    Invalid definitions are reported all at once and nothing is written (exit 2).

    Example:

        nomadmesh render --out jobs

        nomadmesh render order --format json
    """
    from nomadmesh.spec import load_spec  # imported here so `--help` never loads the spec code

    spec = load_spec(services_dir, allow_external=allow_external)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    for path in write_jobs(render(spec, fmt, services), out_dir):  # type: ignore[arg-type]
        click.echo(f"wrote {path}")

"""`nomadmesh render`: service definitions → one Nomad job file per service."""
from __future__ import annotations

import os
from pathlib import Path

import click

from nomadmesh.cli.options import spec_options
from nomadmesh.render import FORMATS, render, write_jobs


@click.command("render")
@click.argument("services", nargs=-1, metavar="[SERVICE]...")
@spec_options
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
def render_command(
    services: tuple[str, ...],
    services_dir: Path,
    project_file: Path | None,
    allow_external: tuple[str, ...], env: str | None, var: tuple[str, ...],
    out_dir: Path,
    fmt: str,
) -> None:
    """Render one Nomad job per service (all, or the SERVICEs named).

    Invalid definitions are reported all at once and nothing is written (exit 2).

    Example:

        nomadmesh render --out jobs

        nomadmesh render order --format json
    """
    from nomadmesh.definitions import load_spec  # imported here so `--help` never loads the spec code

    spec = load_spec(services_dir, project_file, allow_external=allow_external,
        env=env, variables=var, environ=os.environ)
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    from nomadmesh.deploy.local_agent import STATE_DIR

    # JSON comes from parsing each job's HCL; unchanged jobs are read back from the project's parse cache.
    parse_cache = Path(spec.root or ".") / STATE_DIR / "cache" / "jobspec"
    for path in write_jobs(render(spec, fmt, services, parse_cache), out_dir):  # type: ignore[arg-type]
        click.echo(f"wrote {path}")

"""`nomadmesh init`: scaffold a project to start from."""
from __future__ import annotations

from pathlib import Path

import click

from nomadmesh.errors import Problem, SpecError


@click.command("init")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Create a project in DIRECTORY (default: here): services/ with one example service,
    nomadmesh.json, envs/, .gitignore and a README.md.

    Refuses a folder that holds anything else (exit 2, nothing written); running it again on a
    project it made changes nothing.

    Example:

        nomadmesh init shop && cd shop && nomadmesh validate && nomadmesh render
    """
    from nomadmesh.scaffold import scaffold

    try:
        written = scaffold(directory)
    except ValueError as e:
        problems = [Problem(str(directory), "", f"not initialising: {p}") for p in str(e).split("; ")]
        raise SpecError(problems) from None
    except OSError as e:
        raise SpecError([Problem(str(directory), "", f"cannot write the project: {e.strerror or e}")]) from None
    for path in written:
        click.echo(f"wrote {path}")

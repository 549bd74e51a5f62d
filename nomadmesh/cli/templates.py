"""`nomadmesh templates`: the Jinja template pack jobs are rendered from."""
from __future__ import annotations

from pathlib import Path

import click

from nomadmesh.errors import RenderError


@click.group("templates")
def templates_group() -> None:
    """The Jinja templates jobs are rendered from (built-in, or the project's templates/ folder)."""


@templates_group.command("eject")
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=Path),
    default="templates",
    show_default=True,
    help="Folder to copy the built-in templates into (the project's templates/ overrides the built-in pack).",
)
@click.option("--force", is_flag=True, help="Overwrite templates that already exist there.")
def eject_command(to: Path, force: bool) -> None:
    """Copy the built-in template pack into the project, to edit it.

    Files in the project's templates/ folder (beside services/ and nomadmesh.json) replace built-in
    templates of the same name. Refuses to overwrite an existing file unless --force; nothing is
    written then (exit 2).

    Example:

        nomadmesh templates eject --to templates
    """
    from nomadmesh.pack import eject

    try:
        written = eject(to, force)
    except FileExistsError as e:
        raise RenderError(f"not ejecting: {e} already exist(s); use --force to overwrite") from None
    except OSError as e:
        raise RenderError(f"{to}: cannot write templates: {e.strerror or e}") from None
    for path in written:
        click.echo(f"wrote {path}")

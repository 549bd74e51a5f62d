"""`nomadmesh validate`: check every service definition and report all problems at once."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from nomadmesh.cli.options import json_option, spec_options
from nomadmesh.errors import SpecError


@click.command("validate")
@spec_options
@json_option
def validate_command(
    services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...],
    env: str | None, var: tuple[str, ...], as_json: bool
) -> None:
    """Check the service definitions; print every problem as `file: field: message`.

    Exit 0 when valid (warnings, such as upstream cycles, are printed but do not fail),
    exit 2 with one problem per line on stderr otherwise.

    Example:

        nomadmesh validate --services services --allow-external billing
    """
    from nomadmesh.definitions import load_spec  # imported here so `--help` stays fast
    from nomadmesh.mesh.policy import policy_problems

    try:
        spec = load_spec(services_dir, project_file, allow_external, env=env, variables=var, environ=os.environ)
        refused = policy_problems(spec)  # nomadmesh.json intention rules Consul would refuse
        if refused:
            raise SpecError(refused)
    except SpecError as e:
        if as_json:
            problems = [{"file": p.file, "field": p.field, "message": p.message} for p in e.problems]
            click.echo(json.dumps({"ok": False, "errors": problems}, indent=2, ensure_ascii=False))
        else:
            for problem in e.problems:
                click.echo(str(problem), err=True)
            click.echo(f"{len(e.problems)} problem(s) found", err=True)
        raise click.exceptions.Exit(e.exit_code) from None
    if as_json:
        doc = {"ok": True, "services": list(spec.names), "warnings": list(spec.warnings)}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    click.echo(f"ok: {len(spec.services)} services ({', '.join(spec.names)})")
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)

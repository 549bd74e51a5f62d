"""`nomadmesh mesh check`: declared upstreams against the intentions Consul holds (for CI)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nomadmesh.cli.intent import default_policy_option, exit_2_on_error, table
from nomadmesh.cli.options import json_option, spec_options, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from nomadmesh.deploy.target import Target


@click.group("mesh")
def mesh_group() -> None:
    """Checks on the mesh as a whole."""


@mesh_group.command("check")
@exit_2_on_error
@spec_options
@default_policy_option
@click.option("--strict", is_flag=True, help="Fail (exit 1) on warnings too, not only on errors.")
@json_option
@target_options
def check_command(
    target: Target, services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...],
    env: str | None, var: tuple[str, ...],
    default_policy: str | None, strict: bool, as_json: bool,
) -> None:
    """Compare the declared upstreams with the effective intentions (precedence, wildcards, default policy).

    Errors: a declared upstream that would be denied. Warnings: an allow that no declared upstream
    uses; a deny that a less specific (wildcard) allow overrides. Notes: an upstream decided per
    request by an L7 intention.

    Exit 0 when there is no error (warnings are printed), 1 on errors (on warnings too with
    --strict), 2 on invalid definitions or an unreachable Consul.

    Example:

        nomadmesh mesh check --strict --consul-addr http://127.0.0.1:8500
    """
    from nomadmesh.definitions import load_spec
    from nomadmesh.deploy import intentions as di
    from nomadmesh.deploy.target import consul_client
    from nomadmesh.mesh.check import check_mesh

    spec = load_spec(services_dir, project_file, allow_external, env=env, variables=var, environ=os.environ)
    consul = consul_client(target)
    intentions = di.list_intentions(consul)
    policy = di.load_default_policy(consul, default_policy)
    findings = check_mesh(spec, intentions, policy.allow)
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    failed = counts["error"] > 0 or (strict and counts["warning"] > 0)
    if as_json:
        doc = {"ok": not failed, "default_policy": {"action": policy.name, "from": policy.source},
               "intentions": len(intentions), "counts": counts, "findings": [f.to_json() for f in findings]}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        if findings:
            rows = [(f.severity, f"{f.source} -> {f.destination}", f.message) for f in findings]
            click.echo(table(("SEVERITY", "PAIR", "FINDING"), rows), nl=False)
        edges = sum(len(s.upstreams) for s in spec.services)
        click.echo(f"{'FAILED' if failed else 'ok'}: {edges} upstream(s) checked against {len(intentions)} "
                   f"intention(s), default policy {policy.name} (from {policy.source}); "
                   f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} note(s)")
    if failed:
        raise click.exceptions.Exit(1)

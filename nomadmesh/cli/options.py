"""Click option decorators shared by every command that reads the service definitions."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

services_option = click.option(
    "--services",
    "services_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="services",
    show_default=True,
    help="Folder holding <name>/service.json definitions.",
)

project_option = click.option(
    "--project",
    "project_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Project file (name, datacenters, region, namespace, external_services, variables)."
    "  [default: <services>/../nomadmesh.json if present]",
)

allow_external_option = click.option(
    "--allow-external",
    "allow_external",
    multiple=True,
    metavar="NAME",
    help="An upstream that runs outside this folder (repeatable).",
)

env_option = click.option(
    "--env",
    "env",
    default=None,
    metavar="NAME",
    help="Lay envs/NAME.json (beside the project file) over the project and its services.",
)

var_option = click.option(
    "--var",
    "var",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a template variable nomadmesh.json declares (repeatable; over NOMADMESH_VAR_NAME and --env).",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def spec_options(f: F) -> F:
    """--services, --project, --allow-external, --env and --var: everything `load_spec` takes."""
    return services_option(project_option(allow_external_option(env_option(var_option(f)))))


def target_options(f: F) -> F:
    """--nomad-addr and --consul-addr (over NOMAD_ADDR / CONSUL_HTTP_ADDR and the other HashiCorp
    variables); the command receives one `target` (nomadmesh.deploy.target.Target) instead."""
    import functools
    import os

    @functools.wraps(f)
    def wrapper(*args: Any, nomad_addr: str | None, consul_addr: str | None, **kwargs: Any) -> Any:
        from nomadmesh.deploy.target import target_from_env

        return f(*args, target=target_from_env(os.environ, nomad_addr=nomad_addr, consul_addr=consul_addr), **kwargs)

    wrapper = click.option("--consul-addr", default=None, metavar="URL",
                           help="Consul HTTP API.  [default: $CONSUL_HTTP_ADDR or http://127.0.0.1:8500]")(wrapper)
    wrapper = click.option("--nomad-addr", default=None, metavar="URL",
                           help="Nomad HTTP API.  [default: $NOMAD_ADDR or http://127.0.0.1:4646]")(wrapper)
    return wrapper  # type: ignore[return-value]

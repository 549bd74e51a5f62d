"""What every part of the dev agent shares: its configuration, its state and its identity.

The agent's parts (Consul API, Nomad API, scheduler, Connect) receive one AgentContext instead of
reaching for globals, so tests can build a context on a temporary data dir.
"""
from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nomadmesh.agent.state import State

if TYPE_CHECKING:  # the catalog lives in its own module; only its type is needed here
    from nomadmesh.agent.catalog import Catalog


@dataclass(frozen=True)
class AgentConfig:
    data_dir: Path
    bind: str = "127.0.0.1"  # secure by default: loopback only
    nomad_port: int = 4646
    consul_port: int = 8500
    grpc_port: int = 8502
    datacenter: str = "dc1"
    region: str = "global"
    node_name: str = field(default_factory=socket.gethostname)
    config_dir: Path | None = None
    default_policy: str = "allow"  # "allow" (dev) or "deny" (zero trust)
    dev: bool = True

    @property
    def default_allow(self) -> bool:
        return self.default_policy == "allow"


def _persistent_id(state: State, key: str) -> str:
    """A UUID created once and kept in the state, so it survives restarts."""
    record = state.get("meta", key)
    if record is not None:
        return str(record.value)
    with state.write() as txn:
        existing = txn.get("meta", key)
        if existing is not None:
            return str(existing.value)
        value = str(uuid.uuid4())
        txn.put("meta", key, value)
        return value


@dataclass
class AgentContext:
    config: AgentConfig
    state: State
    node_id: str
    cluster_id: str  # Consul's cluster id: the Connect trust domain is "<cluster_id>.consul"
    catalog: "Catalog | None" = None  # set by the agent once the catalog exists
    extras: dict[str, Any] = field(default_factory=dict)  # parts registered by later layers

    @classmethod
    def open(cls, config: AgentConfig) -> "AgentContext":
        config.data_dir.mkdir(parents=True, exist_ok=True)
        state = State(config.data_dir / "state.db")
        return cls(
            config=config,
            state=state,
            node_id=_persistent_id(state, "node_id"),
            cluster_id=_persistent_id(state, "cluster_id"),
        )

    @property
    def trust_domain(self) -> str:
        return f"{self.cluster_id}.consul"

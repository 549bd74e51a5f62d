"""What every part of the dev agent shares: its configuration, its state and its identity.

The agent's parts (Consul API, Nomad API, scheduler, Connect) receive one AgentContext instead of
reaching for globals, so tests can build a context on a temporary data dir. The parts themselves
are not in it: the composition root (agent/build.py) hands each part what it needs, typed.
"""
from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nomadmesh.agent.datadir import DataDirLock, alloc_root, make_private_dir
from nomadmesh.agent.state import State


@dataclass(frozen=True)
class AgentConfig:
    data_dir: Path
    bind: str = "127.0.0.1"  # secure by default: loopback only
    nomad_port: int = 4646
    consul_port: int = 8500
    grpc_port: int | None = None  # the xDS TCP port; None: off (Envoys use the data dir's unix socket)
    dns_port: int | None = None  # Consul's DNS interface (UDP + TCP); None: off (the CLI's default is 8600)
    datacenter: str = "dc1"
    region: str = "global"
    node_name: str = field(default_factory=socket.gethostname)
    config_dir: Path | None = None
    default_policy: str = "allow"  # "allow" (dev) or "deny" (zero trust)
    dev: bool = True
    alloc_dir: Path | None = None  # Nomad's client.alloc_dir; None: datadir.alloc_root's default
    # Nomad's client.host_volume blocks, by name: {Name, Path, ReadOnly, ID} (nomad/host_volumes.py)
    host_volumes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def default_allow(self) -> bool:
        return self.default_policy == "allow"

    @property
    def alloc_root(self) -> Path:
        return alloc_root(self.data_dir, self.alloc_dir)


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
    lock: DataDirLock | None = None

    @classmethod
    def open(cls, config: AgentConfig) -> AgentContext:
        """Lock the data dir (refusing one another agent holds, before touching it), make it private,
        open the state."""
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = DataDirLock(config.data_dir).acquire()
        try:
            make_private_dir(config.data_dir)
            state = State(config.data_dir / "state.db")
            try:
                return cls(config=config, state=state, node_id=_persistent_id(state, "node_id"),
                           cluster_id=_persistent_id(state, "cluster_id"), lock=lock)
            except BaseException:
                state.close()
                raise
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        """Close the state, then let another agent have the data dir."""
        self.state.close()
        if self.lock is not None:
            self.lock.release()

    @property
    def trust_domain(self) -> str:
        return f"{self.cluster_id}.consul"

"""Consul's CA configuration on the running agent: read it, and apply an update (rotating the root
when it asks for a new one), persisted before it takes effect.

The configuration is a state document (kind `connect-ca`, key `config`): its index is the CA's
index (the roots' X-Consul-Index), and a write wakes blocking queries on the roots. The root itself
(key 0600) is written to the data dir's `connect/` by ConnectCA.save before the proxy manager
switches to it, so a crash never leaves leaves signed by a root the agent forgot.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from nomadmesh.agent.connect import ca_config
from nomadmesh.agent.connect.ca_config import CAConfig
from nomadmesh.agent.connect.manager import ProxyManager
from nomadmesh.agent.context import AgentContext

log = logging.getLogger("nomadmesh.agent.connect")

KIND, KEY = "connect-ca", "config"


class CAAdmin:
    def __init__(self, ctx: AgentContext, manager: ProxyManager, ca_dir: Path) -> None:
        self.ctx, self.manager, self.ca_dir = ctx, manager, ca_dir
        self._lock = threading.Lock()  # one update at a time

    def config(self) -> CAConfig:
        rec = self.ctx.state.get(KIND, KEY)
        if rec is None:
            return ca_config.default_config()
        return CAConfig(rec.value["Provider"], rec.value["Config"], rec.value.get("ForceWithoutCrossSigning", False))

    def index(self) -> int:
        """The CA's index: that of its configuration's last write (1 before any)."""
        return max(self.ctx.state.kind_index(KIND), 1)

    def config_json(self) -> dict[str, Any]:
        """The body of `GET /v1/connect/ca/configuration`."""
        cfg = self.config()
        rec = self.ctx.state.get(KIND, KEY)
        return {"Provider": cfg.provider, "Config": cfg.public(), "State": None,
                "ForceWithoutCrossSigning": cfg.force_without_cross_signing,
                "CreateIndex": rec.create_index if rec else 1, "ModifyIndex": rec.modify_index if rec else 1}

    def update(self, body: Any) -> None:
        """Apply a PUT body (CAConfigError when Consul would refuse it; nothing changes then)."""
        new = ca_config.parse(body)
        with self._lock:
            current = self.manager.ca
            if ca_config.needs_new_root(self.config(), new):
                root = ca_config.new_root(new, current.cluster_id)
                ca = current.rotated_to(root, cross_sign=not new.force_without_cross_signing)
                log.info("connect: rotating the CA root %s -> %s%s", current.root_id, ca.root_id,
                         "" if ca.intermediates else " without cross-signing")
            else:
                ca = replace(current, leaf_ttl=new.leaf_ttl)
            ca.save(self.ca_dir)
            with self.ctx.state.write() as txn:
                txn.put(KIND, KEY, {"Provider": new.provider, "Config": new.config,
                                    "ForceWithoutCrossSigning": new.force_without_cross_signing})
            self.manager.replace_ca(ca)

"""Consul's CA configuration on the running agent: read it, and apply an update (rotating the root
when it asks for a new one), persisted before it takes effect.

The configuration is a state document (kind `connect-ca`, key `config`): its index is the CA's
index (the roots' X-Consul-Index), and a write wakes blocking queries on the roots. The root itself
(key 0600) is written to the data dir's `connect/` by ConnectCA.save before the proxy manager
switches to it, so a crash never leaves leaves signed by a root the agent forgot.

Rotated-out roots are pruned at start and then every hour (Consul's caRootPruneInterval) once they
have been out for twice the leaf TTL (ConnectCA.pruned); a prune is a write of kind `connect-ca`
(key `roots`), so it moves the roots' index, and the proxies get the smaller trust bundle.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from nomadmesh.agent.connect import ca_config
from nomadmesh.agent.connect.ca import root_id
from nomadmesh.agent.connect.ca_config import CAConfig
from nomadmesh.agent.connect.manager import ProxyManager
from nomadmesh.agent.context import AgentContext

log = logging.getLogger("nomadmesh.agent.connect")

KIND, KEY = "connect-ca", "config"
ROOTS_KEY = "roots"  # what the last prune removed (its write is the roots' new index)
PRUNE_INTERVAL_S = 3600.0  # Consul's caRootPruneInterval


class CAAdmin:
    def __init__(self, ctx: AgentContext, manager: ProxyManager, ca_dir: Path) -> None:
        self.ctx, self.manager, self.ca_dir = ctx, manager, ca_dir
        self._lock = threading.Lock()  # one update at a time
        self._stopping = threading.Event()
        self._pruner: threading.Thread | None = None

    def start(self) -> None:
        """Prune now, before the APIs answer (a root due at start is never served), then every
        PRUNE_INTERVAL_S until stop()."""
        self._stopping.clear()
        self._prune_logged()
        self._pruner = threading.Thread(target=self._prune_loop, name="ca-root-pruning", daemon=True)
        self._pruner.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._pruner is not None:
            self._pruner.join(timeout=5)

    def _prune_loop(self) -> None:
        while not self._stopping.wait(PRUNE_INTERVAL_S):
            self._prune_logged()

    def _prune_logged(self) -> None:
        try:
            self.prune()
        except Exception:  # as Consul's routine: log, try again at the next tick
            log.exception("connect: error pruning CA roots")

    def prune(self, now: dt.datetime | None = None) -> list[str]:
        """Consul's pruneCARoots: drop the rotated-out roots no valid leaf can chain to any more;
        returns their IDs."""
        with self._lock:
            current = self.manager.ca
            ca = current.pruned(now)
            if ca is current:
                return []
            gone = [root_id(c) for c in current.previous_roots if c not in ca.previous_roots]
            ca.save(self.ca_dir)
            with self.ctx.state.write() as txn:
                txn.put(KIND, ROOTS_KEY, {"ActiveRootID": ca.root_id, "Pruned": gone})
            for rid in gone:
                log.info("connect: pruning old unused root CA %s", rid)
            self.manager.replace_ca(ca)
            return gone

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

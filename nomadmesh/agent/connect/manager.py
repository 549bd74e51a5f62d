"""Keeps every sidecar's snapshot current: the I/O around proxies.build_all.

One thread blocks on the state (services, checks, config entries) and, whenever something
changed, reads it once, rebuilds every proxy's snapshot and hands the cache each one; the cache
compares by content and wakes only the streams whose proxy really changed, so an intention write
reaches its Envoy in milliseconds and an unrelated write costs no push.

Leaf certificates are held here, one per service name, signed on first use and replaced once
`ca.leaf_needs_rotation` says so (checked at least every ROTATION_CHECK_S); a new leaf reaches the
running Envoys over SDS, without restarting them.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cryptography import x509

from nomadmesh.agent.connect import ca as ca_mod
from nomadmesh.agent.connect.cache import SnapshotCache
from nomadmesh.agent.connect.proxies import CONFIG_KIND, MeshView, build_all, proxies
from nomadmesh.agent.consul import external
from nomadmesh.agent.context import AgentContext

log = logging.getLogger("nomadmesh.agent.connect")

WATCHED = ("service", "check", CONFIG_KIND, *external.KINDS)
ROTATION_CHECK_S = 60.0
WAKE_S = 0.5
_T = TypeVar("_T")


class ProxyManager:
    def __init__(self, ctx: AgentContext, ca: ca_mod.ConnectCA, cache: SnapshotCache) -> None:
        self.ctx = ctx
        self.ca = ca
        self.cache = cache
        self._leaves: dict[str, tuple[ca_mod.Leaf, int]] = {}  # service -> (leaf, its index)
        # service -> the root its leaf was last checked against: verifying a leaf's signature
        # costs a quarter millisecond, and every pass looks up every proxy's leaf.
        self._checked_root: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()
        self._leaf_changed = threading.Condition(self._lock)
        self._leaf_counter = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: dict[str, str] = {}  # proxy id -> last build error (logged once per change)
        self._reads: dict[str | tuple[str, ...], tuple[int, Any]] = {}  # kinds -> (their index, what was read)

    # --- leaves -------------------------------------------------------------------------------

    def leaf(self, service: str) -> ca_mod.Leaf:
        """The current leaf of `service`, signed now if there is none or it is due for rotation."""
        return self.leaf_with_index(service)[0]

    def leaf_with_index(self, service: str) -> tuple[ca_mod.Leaf, int]:
        with self._lock:
            return self._current_leaf(service)

    def leaf_if_free(self, service: str) -> tuple[ca_mod.Leaf, int] | None:
        """`leaf_with_index`, or None rather than wait for the lock (held while a rotated root
        re-signs every leaf): for callers on an event loop, which must not block."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._current_leaf(service)
        finally:
            self._lock.release()

    def held_leaf_if_free(self, service: str) -> tuple[ca_mod.Leaf, int] | None:
        """The leaf of `service` if one is held and not due; None if it must be signed, or rather
        than wait for the lock. Signs nothing: the caller may sign elsewhere and `adopt_leaf_if_free`."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            current = self._leaves.get(service)
            return current if current is not None and not self._due(service, current[0]) else None
        finally:
            self._lock.release()

    def adopt_leaf_if_free(self, service: str, leaf: ca_mod.Leaf, signed_by: ca_mod.ConnectCA,
                           ) -> tuple[ca_mod.Leaf, int] | None:
        """Hold `leaf` (signed elsewhere by `signed_by`) as the leaf of `service`, unless a leaf
        that is not due came first (that one is the answer, as if this one was never asked for) or
        the CA changed meanwhile (signed now by the new one). None rather than wait for the lock."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            current = self._leaves.get(service)
            if signed_by is not self.ca or (current is not None and not self._due(service, current[0])):
                return self._current_leaf(service)
            return self._hold(service, leaf)
        finally:
            self._lock.release()

    def _current_leaf(self, service: str) -> tuple[ca_mod.Leaf, int]:
        """Under the lock: the leaf of `service`, signed now if it has none or it is due."""
        current = self._leaves.get(service)
        if current is None or self._due(service, current[0]):
            current = self._hold(service, self.ca.sign_leaf(service, self.ctx.config.datacenter))
        return current

    def _hold(self, service: str, leaf: ca_mod.Leaf) -> tuple[ca_mod.Leaf, int]:
        """Under the lock: `leaf` (signed by the current CA) becomes the leaf of `service`."""
        self._leaf_counter += 1
        current = self._leaves[service] = (leaf, self._leaf_counter)
        self._checked_root[service] = self.ca.root_cert
        self._leaf_changed.notify_all()
        log.info("connect: signed leaf for %s (serial %s)", service, leaf.serial_hex)
        return current

    def _due(self, service: str, leaf: ca_mod.Leaf) -> bool:
        """Whether `leaf` must be replaced: its soft expiry passed, or the root changed and did not
        sign it (the signature is checked once per root, not on every look-up). Under the lock."""
        if ca_mod.leaf_needs_rotation(leaf.cert):
            return True
        if self._checked_root.get(service) is self.ca.root_cert:
            return False
        if not self.ca.issued(leaf.cert):
            return True
        self._checked_root[service] = self.ca.root_cert
        return False

    def wait_leaf(self, service: str, index: int, timeout: float) -> tuple[ca_mod.Leaf, int]:
        """A blocking query on a leaf: return once its index differs from `index` (or at timeout)."""
        leaf, current = self.leaf_with_index(service)
        deadline = time.monotonic() + timeout
        with self._lock:
            while current == index and (left := deadline - time.monotonic()) > 0:
                # Wake in time to rotate a leaf that falls due while the query waits.
                self._leaf_changed.wait(min(left, ROTATION_CHECK_S))
                leaf, current = self._leaves[service]
        if current == index:
            return self.leaf_with_index(service)
        return leaf, current

    def replace_ca(self, ca: ca_mod.ConnectCA) -> None:
        """Make `ca` the signing CA (a rotated root, or new TTLs): every leaf handed out is re-signed
        now, blocking leaf queries wake, and every proxy gets its new leaf and the new trust bundle."""
        with self._lock:
            rotated = ca.root_cert != self.ca.root_cert
            self.ca = ca
            if rotated:
                for service in list(self._leaves):
                    self._leaf_counter += 1
                    self._leaves[service] = (ca.sign_leaf(service, self.ctx.config.datacenter), self._leaf_counter)
                    self._checked_root[service] = ca.root_cert
                self._leaf_changed.notify_all()
        if rotated:
            log.info("connect: root rotated to %s; %d leaves re-signed", ca.root_id, len(self._leaves))
        self.sync()

    def _leaf_pems(self, service: str) -> tuple[str, str]:
        leaf = self.leaf(service)
        return leaf.cert_pem, leaf.key_pem

    # --- snapshots ----------------------------------------------------------------------------

    def view(self) -> MeshView:
        with self.ctx.state.reading():  # one consistent read
            return MeshView(
                services=self._unless_unchanged("service", lambda: tuple(self.ctx.state.values("service"))),
                checks=self._unless_unchanged("check", lambda: tuple(self.ctx.state.values("check"))),
                entries=self._unless_unchanged(CONFIG_KIND, lambda: {
                    r.key: r.value for r in self.ctx.state.records(CONFIG_KIND)}),
                datacenter=self.ctx.config.datacenter, trust_domain=self.ca.trust_domain,
                roots_pem=self.ca.trust_bundle_pem, default_allow=self.ctx.config.default_allow,
                remote_proxies=self._unless_unchanged(
                    external.KINDS, lambda: external.ExternalCatalog(self.ctx).connect_proxies()),
            )

    def _unless_unchanged(self, kinds: str | tuple[str, ...], read: Callable[[], _T]) -> _T:
        """`read()`, or what it returned last time if no write touched `kinds` since: an
        intention change must not re-parse a thousand service registrations. What it returns
        is shared between passes and never changed (the builders only read)."""
        index = self.ctx.state.kind_index(*((kinds,) if isinstance(kinds, str) else kinds))
        last = self._reads.get(kinds)
        if last is not None and last[0] == index:
            return last[1]
        value = read()
        self._reads[kinds] = (index, value)
        return value

    def sync(self) -> None:
        """Rebuild every snapshot from the state and set those that changed; drop gone proxies."""
        view = self.view()
        try:
            snaps = build_all(view, self._leaf_pems)
        except ValueError as e:  # a malformed entry must not stop the other proxies' updates
            log.error("connect: cannot build proxy snapshots: %s", e)
            return
        for proxy_id, snap in snaps.items():
            try:
                self.cache.set(proxy_id, snap)
                self._errors.pop(proxy_id, None)
            except Exception as e:
                if self._errors.get(proxy_id) != str(e):
                    log.error("connect: proxy %s: %s", proxy_id, e)
                self._errors[proxy_id] = str(e)
        # A proxy whose snapshot could not be built (a chain Consul refuses) keeps what it has.
        for gone in set(self.cache.nodes()) - set(snaps) - {p["ID"] for p in proxies(view)}:
            self.cache.delete(gone)

    def _run(self) -> None:
        index = self.ctx.state.kind_index(*WATCHED)
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                # Short waits so stop() is prompt; a pass runs on a change, or when leaves may be due.
                new = self.ctx.state.wait(WATCHED, index, WAKE_S)
                if self._stop.is_set():
                    return
                if new == index and time.monotonic() - last < ROTATION_CHECK_S:
                    continue
                index, last = new, time.monotonic()
                self.sync()
            except Exception:
                if self._stop.is_set():
                    return  # the state closed under us during shutdown
                log.exception("connect: proxy manager pass failed")
                self._stop.wait(1.0)

    def start(self) -> ProxyManager:
        self.sync()
        self._thread = threading.Thread(target=self._run, name="connect-proxies", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def leaves(self) -> dict[str, ca_mod.Leaf]:
        with self._lock:
            return {name: leaf for name, (leaf, _) in self._leaves.items()}

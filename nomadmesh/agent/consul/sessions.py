"""Consul sessions and the KV locks they hold (Consul's agent/consul/session_*.go, state/kvs.go).

A session is a document of kind `session` (key = its UUID) bound to a node and to health checks;
it ends when destroyed, when its TTL runs out without a renew (after TTL x 2, Consul's
SessionTTLMultiplier), or when one of its checks turns critical. Ending it releases the KV keys
it holds (behavior `release`: the key stays, its Session is cleared) or deletes them (`delete`),
and each such key then refuses a new acquire for the session's LockDelay, so that a lock holder
that merely lost its session has time to notice before someone else takes over.

KV entries keep their lock in the stored value: `LockIndex` (how many times the key was
acquired) and `Session` (the holder, absent when free), exactly Consul's KVPair fields.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.duration_seconds import parse_duration
from nomadmesh.agent.state import Txn
from nomadmesh.durations import SECOND, go_duration
from nomadmesh.gotext import quote

log = logging.getLogger("nomadmesh.agent.consul.sessions")

KIND = "session"
KV_KIND = "kv"
TTL_MIN_S = 10.0  # Consul's default session_ttl_min
TTL_MAX_S = 86400.0  # Consul's SessionTTLMax (24h)
TTL_MULTIPLIER = 2  # Consul lets a session live twice its TTL before invalidating it
DEFAULT_LOCK_DELAY_NS = 15 * 10**9
LOCK_DELAY_SECONDS_BELOW = 1000  # Consul's lockDelayMinThreshold: a smaller number means seconds
MAX_LOCK_DELAY_NS = 60 * 10**9  # Consul's MaxLockDelay
BEHAVIORS = ("release", "delete")
_FIELDS = {f.lower(): f for f in ("Name", "Node", "LockDelay", "Behavior", "TTL", "Checks", "NodeChecks",
                                  "ServiceChecks", "Namespace", "Partition")}


class SessionError(Exception):
    """A session request Consul's server refuses (answered as 500 with this text, as Consul does)."""


def lock_delay_ns(raw: Any) -> int:
    """The body's LockDelay: a Go duration string, or a number (seconds below 1000, else ns)."""
    if raw is None or raw == "":
        return DEFAULT_LOCK_DELAY_NS
    if isinstance(raw, bool):
        raise SessionError(f"LockDelay: must be a duration, not {raw!r}")
    if isinstance(raw, (int, float)):
        return int(raw * 10**9) if raw < LOCK_DELAY_SECONDS_BELOW else int(raw)
    if isinstance(raw, str):
        try:
            return int(parse_duration(raw) * 10**9)
        except ValueError as e:
            raise SessionError(f"LockDelay: {e}") from None
    raise SessionError(f"LockDelay: must be a duration, not {raw!r}")


def parse_ttl(raw: Any, ttl_min_s: float) -> str:
    """Validate a session TTL as Consul's Session.Apply does; returns it as given ("" = none)."""
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str):
        raise SessionError(f"Session TTL '{raw}' invalid: must be a duration string")
    try:
        ttl = parse_duration(raw)
    except ValueError as e:
        raise SessionError(f"Session TTL '{raw}' invalid: {e}") from None
    if ttl != 0 and not ttl_min_s <= ttl <= TTL_MAX_S:
        raise SessionError(f"Invalid Session TTL '{int(ttl * 10**9)}', must be between "
                           f"[{go_duration(round(ttl_min_s * SECOND))}={go_duration(round(TTL_MAX_S * SECOND))}]")
    return raw


def _string_list(body: dict[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SessionError(f"{field}: must be a list of check IDs")
    return list(value)


def kv_entry_fields(value: dict[str, Any]) -> dict[str, Any]:
    """The lock fields of a stored KV value as Consul's KVPair shows them (Session only when held)."""
    fields: dict[str, Any] = {"LockIndex": int(value.get("LockIndex", 0))}
    if value.get("Session"):
        fields["Session"] = value["Session"]
    return fields


class Sessions:
    """Sessions of the dev agent's one datacenter, their TTL timers and the KV lock delays."""

    def __init__(self, ctx: AgentContext, node_exists: Callable[[str], bool],
                 check_status: Callable[[str, str], str | None], ttl_min_s: float = TTL_MIN_S):
        self.ctx = ctx
        self._node_exists = node_exists
        self._check_status = check_status  # (node, check ID) -> status, None when not registered
        self.ttl_min_s = ttl_min_s
        self._lock = threading.Lock()
        self._timers: dict[str, threading.Timer] = {}
        self._lock_delays: dict[str, float] = {}  # KV key -> monotonic time until which acquire fails

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Give every stored TTL session a full TTL again (Consul's leader does so on election)."""
        for sess in self.ctx.state.values(KIND):
            if sess.get("TTL"):
                self._arm(sess["ID"], sess["TTL"])

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()

    # --- create / destroy / renew ------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> str:
        """Create a session from Consul's request body (field names in any letter case, as Consul's
        decoder takes them: py-consul sends `lockdelay`, `ttl`); returns its ID."""
        body = {_FIELDS.get(str(k).lower(), k): v for k, v in body.items()}
        behavior = body.get("Behavior") or "release"
        if behavior not in BEHAVIORS:
            raise SessionError(f"Invalid Behavior setting '{behavior}'")
        ttl = parse_ttl(body.get("TTL"), self.ttl_min_s)
        node = body.get("Node") or self.ctx.config.node_name
        if not isinstance(node, str):
            raise SessionError("Node: must be a string")
        node_checks = _string_list(body, "NodeChecks")
        legacy_checks = _string_list(body, "Checks")
        service_checks = body.get("ServiceChecks")
        if service_checks is not None and (not isinstance(service_checks, list) or not all(
                isinstance(c, dict) and isinstance(c.get("ID"), str) for c in service_checks)):
            raise SessionError("ServiceChecks: must be a list of {ID, Namespace}")
        if node_checks is None and legacy_checks is None and service_checks is None:
            node_checks = ["serfHealth"]  # Consul's default: the session ends with the node
        node_checks = list(dict.fromkeys((node_checks or []) + (legacy_checks or [])))
        if not self._node_exists(node):
            raise SessionError("Missing node registration")
        for check_id in node_checks + [c["ID"] for c in service_checks or []]:
            status = self._check_status(node, check_id)
            if status is None:
                raise SessionError(f"Missing check '{check_id}' registration")
            if status == "critical":
                raise SessionError(f"Check '{check_id}' is in critical state")
        name = body.get("Name") or ""
        if not isinstance(name, str):
            raise SessionError("Name: must be a string")
        session_id = str(uuid.uuid4())
        with self.ctx.state.write() as txn:
            txn.put(KIND, session_id, {
                "ID": session_id, "Name": name, "Node": node, "LockDelay": lock_delay_ns(body.get("LockDelay")),
                "Behavior": behavior, "TTL": ttl, "NodeChecks": node_checks,
                "ServiceChecks": [{"ID": c["ID"], "Namespace": c.get("Namespace", "")}
                                  for c in service_checks] if service_checks else None,
                "CreateIndex": txn.index, "ModifyIndex": txn.index,
            })
        if ttl:
            self._arm(session_id, ttl)
        return session_id

    def destroy(self, session_id: str) -> None:
        """End a session, releasing or deleting its keys; an unknown ID is a no-op, as in Consul."""
        self._disarm(session_id)
        with self.ctx.state.write() as txn:
            self._invalidate(txn, session_id)

    def renew(self, session_id: str) -> dict[str, Any] | None:
        """Restart a session's TTL; None when there is no such session."""
        sess = self.get(session_id)
        if sess is not None and sess.get("TTL"):
            self._arm(session_id, sess["TTL"])
        return sess

    def on_check_status(self, check_id: str, status: str) -> None:
        """A check turned `status` (or was `deregistered`): sessions bound to it end when it is
        critical or gone (Consul's rule)."""
        if status not in ("critical", "deregistered"):
            return
        for sess in self.list():
            bound = list(sess.get("NodeChecks") or []) + [c["ID"] for c in sess.get("ServiceChecks") or []]
            if check_id in bound:
                log.info("session %s: check %r is critical, invalidating", sess["ID"], check_id)
                self.destroy(sess["ID"])

    def on_node_removed(self, node: str) -> None:
        """A node left the catalog: its sessions end (Consul's rule)."""
        for sess in self.list():
            if sess["Node"] == node:
                self.destroy(sess["ID"])

    # --- reads --------------------------------------------------------------------------------

    def get(self, session_id: str) -> dict[str, Any] | None:
        rec = self.ctx.state.get(KIND, session_id)
        return rec.value if rec else None

    def list(self) -> list[dict[str, Any]]:
        return sorted(self.ctx.state.values(KIND), key=lambda s: s["CreateIndex"])

    # --- KV locks -----------------------------------------------------------------------------

    def acquire(self, txn: Txn, key: str, session_id: str, value: dict[str, Any]) -> bool:
        """Take `key` for `session_id` and write `value` (Consul's KVLock); False when held by
        another session or within the lock delay of a session that ended holding it."""
        if not session_id:
            raise SessionError("missing session")
        if txn.get(KIND, session_id) is None:
            raise SessionError(f"invalid session {quote(session_id)}")  # Consul's %#v: one line, escaped
        if self._lock_delays.get(key, 0.0) > time.monotonic():
            return False
        self._lock_delays.pop(key, None)
        current = txn.get(KV_KIND, key)
        lock_index = 1
        if current is not None:
            holder = current.value.get("Session") or ""
            if holder and holder != session_id:
                return False
            lock_index = int(current.value.get("LockIndex", 0)) + (0 if holder == session_id else 1)
        txn.put(KV_KIND, key, dict(value, LockIndex=lock_index, Session=session_id))
        return True

    def release(self, txn: Txn, key: str, session_id: str, value: dict[str, Any]) -> bool:
        """Let go of `key` if `session_id` holds it, writing `value` (Consul's KVUnlock)."""
        if not session_id:
            raise SessionError("missing session")
        current = txn.get(KV_KIND, key)
        if current is None or current.value.get("Session") != session_id:
            return False
        txn.put(KV_KIND, key, dict(value, LockIndex=int(current.value.get("LockIndex", 0))))
        return True

    # --- internals ----------------------------------------------------------------------------

    def _invalidate(self, txn: Txn, session_id: str) -> None:
        rec = txn.get(KIND, session_id)
        if rec is None:
            return
        sess = rec.value
        txn.delete(KIND, session_id)
        delay_until = time.monotonic() + int(sess.get("LockDelay", 0)) / 1e9
        for kv in txn.records(KV_KIND):
            if kv.value.get("Session") != session_id:
                continue
            if sess.get("Behavior") == "delete":
                txn.delete(KV_KIND, kv.key)
            else:
                txn.put(KV_KIND, kv.key, {k: v for k, v in kv.value.items() if k != "Session"})
            if sess.get("LockDelay"):
                self._lock_delays[kv.key] = delay_until
        log.info("session %s (%s) ended", session_id, sess.get("Behavior"))

    def _arm(self, session_id: str, ttl: str) -> None:
        seconds = parse_duration(ttl) * TTL_MULTIPLIER
        if seconds <= 0:
            return
        timer = threading.Timer(seconds, lambda: self._expire(session_id, timer))
        timer.daemon = True
        with self._lock:
            old = self._timers.pop(session_id, None)
            self._timers[session_id] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _disarm(self, session_id: str) -> None:
        with self._lock:
            timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, session_id: str, timer: threading.Timer) -> None:
        with self._lock:
            if self._timers.get(session_id) is not timer:
                return  # renewed or destroyed while this timer fired
            del self._timers[session_id]
        log.info("session %s: TTL expired", session_id)
        try:
            with self.ctx.state.write() as txn:
                self._invalidate(txn, session_id)
        except Exception:  # the state may be closing under the timer
            log.debug("session %s: not invalidated", session_id, exc_info=True)

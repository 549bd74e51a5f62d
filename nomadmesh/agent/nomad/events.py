"""Nomad's event stream: the state's committed writes as Nomad events, in a bounded buffer.

Nomad publishes one batch of events per Raft index ({"Index": N, "Events": [...]}) from the
objects a write changed; every event of a batch carries the type of the write's message
(JobRegistered for a job register with its evaluation, PlanResult for a plan's allocations and
deployment, ...). The agent has no message types, so `event_type` infers the same name from what
the transaction changed, unless the writer named it (Txn.event_type, e.g. NodeDrain).

The buffer keeps the last BUFFER_SIZE batches (Nomad's default event_buffer_size is 100). Readers
hold nothing but a cursor (the last index they sent): there is no queue per subscriber, so a slow
reader never holds the agent back; one whose cursor fell out of the buffer is told so and closed
(it reconnects with `index=`), as Nomad drops a subscription that cannot keep up.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.agent.nomad.structs import deployment_json
from nomadmesh.agent.state import Change, State
from nomadmesh.wakeups import Wakeups

BUFFER_SIZE = 100
HEARTBEAT_S = 10.0

# The state's kinds that are Nomad objects, with their event topic and payload key.
TOPICS = {"job": "Job", "alloc": "Allocation", "eval": "Evaluation", "deployment": "Deployment", "node": "Node"}
PAYLOAD_KEY = {"Job": "Job", "Allocation": "Allocation", "Evaluation": "Evaluation", "Deployment": "Deployment",
               "Node": "Node"}


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def event_type(changes: list[Change]) -> str | None:
    """Nomad's message type for a write that changed `changes` (state/events.go's MsgTypeEvents)."""
    by_kind: dict[str, list[Change]] = {}
    for c in changes:
        by_kind.setdefault(c.kind, []).append(c)
    if "job" in by_kind:
        stopped = any(c.after is None or (c.after.get("Stop") and not (c.before or {}).get("Stop"))
                      for c in by_kind["job"])
        return "JobDeregistered" if stopped else "JobRegistered"
    if "node" in by_kind:
        return "NodeRegistration" if any(c.before is None for c in by_kind["node"]) else "NodeStreamEvent"
    if "alloc" in by_kind:
        planned = any(c.before is None or c.after is None
                      or c.before.get("DesiredStatus") != c.after.get("DesiredStatus") for c in by_kind["alloc"])
        return "PlanResult" if planned else "AllocationUpdated"
    if "deployment" in by_kind:
        return "DeploymentStatusUpdate"
    if "eval" in by_kind:
        return "EvaluationUpdated"
    return None


def event_from_change(change: Change) -> dict[str, Any] | None:
    """One change as Nomad's Event without its Type and Index (state/events.go eventFromChange):
    Nomad publishes deletions of jobs and nodes only."""
    topic = TOPICS.get(change.kind)
    doc = change.after if change.after is not None else change.before
    if topic is None or not isinstance(doc, dict) or (change.after is None and topic not in ("Job", "Node")):
        return None
    obj = _public(doc)
    namespace = "" if topic == "Node" else obj.get("Namespace") or "default"
    filter_keys: list[str] = []
    if topic in ("Allocation", "Evaluation"):
        filter_keys = [obj.get("JobID", ""), obj.get("DeploymentID") or ""]
    elif topic == "Deployment":
        filter_keys = [obj.get("JobID", "")]
    payload: dict[str, Any] = {PAYLOAD_KEY[topic]: deployment_json(obj) if topic == "Deployment" else obj}
    if topic == "Allocation":
        payload[topic] = {k: v for k, v in obj.items() if k != "Job"}  # Nomad sends allocs without their job
    if topic == "Job" and change.after is None:
        payload["Deleted"] = True
    return {"Topic": topic, "Key": obj.get("ID", change.key), "Namespace": namespace,
            "FilterKeys": filter_keys or None, "Payload": payload}


def events_from_changes(index: int, changes: list[Change], named: str | None = None) -> list[dict[str, Any]]:
    kind_of = named or event_type(changes)
    if kind_of is None:
        return []
    events = []
    for change in changes:
        event = event_from_change(change)
        if event is not None:
            events.append({"Type": kind_of, "Index": index, **event})
    return events


@dataclass(frozen=True)
class Subscription:
    """What a stream asked for: topic -> keys ("*" for all) and the namespaces it sees ("*" = all)."""
    topics: dict[str, list[str]]
    namespace: str = "default"

    def wants(self, event: dict[str, Any]) -> bool:
        """nomad/stream/subscription.go filter(): namespace first, then topic and key."""
        ns = event.get("Namespace") or ""
        if ns and self.namespace != "*" and ns != self.namespace:
            return False
        keys = self.topics.get("*", []) + self.topics.get(event["Topic"], [])
        return any(k == "*" or k == event["Key"] or k in (event.get("FilterKeys") or []) for k in keys)


def parse_topics(raw: list[str]) -> dict[str, list[str]]:
    """`topic=Job:web` / `topic=Node` (all keys) / none at all (everything), as Nomad's parseTopic;
    raises ValueError with Nomad's message otherwise."""
    if not raw:
        return {"*": ["*"]}
    topics: dict[str, list[str]] = {}
    for topic in raw:
        parts = topic.split(":")
        if len(parts) > 2:
            raise ValueError(f"error parsing topics: Invalid key value pair for topic, topic: {topic}")
        name, key = (parts[0], "*") if len(parts) == 1 else (parts[0], parts[1])
        topics.setdefault(name, []).append(key)
    return topics


class SlowReader(Exception):
    """The reader's next events have already left the buffer."""


@dataclass
class EventBroker:
    """The agent's event buffer, fed by the state's commits."""
    size: int = BUFFER_SIZE
    _batches: deque[tuple[int, list[dict[str, Any]]]] = field(default_factory=deque)
    _dropped_through: int = 0  # the highest index of a batch that has left the buffer
    _latest: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wakeups: Wakeups = field(default_factory=Wakeups)

    @classmethod
    def on(cls, state: State, size: int = BUFFER_SIZE) -> EventBroker:
        broker = cls(size=size)
        state.on_commit(broker.publish)
        return broker

    def publish(self, index: int, changes: list[Change], named: str | None = None) -> None:
        events = events_from_changes(index, changes, named)
        if not events:
            return
        with self._lock:
            self._batches.append((index, events))
            while len(self._batches) > self.size:
                self._dropped_through = self._batches.popleft()[0]
            self._latest = index
        self._wakeups.notify()

    def start_cursor(self, index: int) -> int:
        """The cursor of a new reader asking for events from `index` on (0: the whole buffer);
        one older than the buffer starts at its oldest batch, as Nomad's StartAtClosest."""
        with self._lock:
            return max(index - 1, self._dropped_through, 0)

    def after(self, cursor: int) -> list[tuple[int, list[dict[str, Any]]]]:
        """The batches newer than `cursor`; SlowReader if some of them were dropped meanwhile."""
        with self._lock:
            if cursor < self._dropped_through:
                raise SlowReader(f"events after index {cursor} are no longer in the buffer")
            return [b for b in self._batches if b[0] > cursor]

    async def wait(self, cursor: int, timeout: float) -> bool:
        """Until a batch newer than `cursor` is published or `timeout` passes."""
        return await self._wakeups.wait_for(lambda: self._latest > cursor, timeout)

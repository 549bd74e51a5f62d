"""Operator actions on the node: drain, scheduling eligibility, forced evaluation, purge.

As Nomad does with a single client: a drained or ineligible node takes no new placements (the
planner's feasibility check), so a drain stops the node's allocations ("alloc is being migrated")
and their replacements stay unplaced behind a blocked evaluation until the node is eligible again.

The drain itself runs in the scheduler's passes (`drain_step`), as Nomad's drainer runs beside the
RPC that set it: once the drainer's batch window (DRAIN_BATCH_NS, Nomad's BatchUpdateInterval) has
passed, the allocations are migrated; once all of them are stopped on the client, the drain is
complete. What Nomad's drainer paces (migrate.max_parallel, waiting for healthy replacements on
other nodes) has nowhere to go on one node: every allocation the drain covers is migrated at once.
The errors are Nomad's RPC errors (the HTTP API answers them with 500 and their text).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nomadmesh.agent.nomad import evals
from nomadmesh.agent.nomad.structs import TRIGGER_RECONCILE, evaluation, is_terminal, now_ns, owner_key
from nomadmesh.agent.state import State, Txn

ELIGIBLE = "eligible"
INELIGIBLE = "ineligible"
MIGRATING = "alloc is being migrated"
MAX_NODE_EVENTS = 10  # Nomad keeps a node's last 10 events
DRAIN_BATCH_NS = 1_000_000_000  # Nomad's drainer batches its allocation updates over 1 s


class NodeOpError(Exception):
    """Nomad's own refusal text for the request."""


@dataclass
class NodeUpdate:
    """What a node write did: its index, and the evaluations it created."""
    index: int = 0
    eval_ids: list[str] = field(default_factory=list)
    eval_index: int = 0


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def _node(txn: Txn, node_id: str) -> dict[str, Any]:
    rec = txn.get("node", node_id)
    if rec is None:
        raise NodeOpError("node not found")
    return dict(rec.value)


def _event(node: dict[str, Any], message: str, subsystem: str, index: int) -> None:
    events = [*(node.get("Events") or []), {"Message": message, "Subsystem": subsystem, "Details": None,
                                             "Timestamp": _rfc3339(now_ns()), "CreateIndex": index}]
    node["Events"] = events[-MAX_NODE_EVENTS:]


def _put_node(txn: Txn, node: dict[str, Any]) -> None:
    node["ModifyIndex"] = txn.index
    node["StatusUpdatedAt"] = int(time.time())
    txn.put("node", node["ID"], node)


def node_evals(txn: Txn, node_id: str) -> list[str]:
    """Nomad's createNodeEvals: one node-update evaluation per job with a live allocation on the
    node (service: not both server- and client-terminal; batch: not terminated), and system jobs."""
    jobs: dict[str, dict[str, Any]] = {}
    for a in (r.value for r in txn.records("alloc")):
        if a["NodeID"] != node_id or owner_key(a) in jobs:
            continue
        job_type = (a.get("Job") or {}).get("Type", "service")
        if job_type == "service" and a["DesiredStatus"] != "run" and a["ClientStatus"] in ("complete", "failed",
                                                                                          "lost"):
            continue
        if job_type == "batch" and a["ClientStatus"] in ("complete", "failed", "lost"):
            continue
        if job_type not in ("service", "batch"):
            continue
        job_rec = txn.get("job", owner_key(a))
        if job_rec is not None:
            jobs[job_rec.key] = job_rec.value
    for rec in txn.records("job"):
        if rec.value.get("Type") == "system" and not rec.value.get("Stop"):
            jobs.setdefault(rec.key, rec.value)
    ids = []
    for job in jobs.values():
        ev = evaluation(job, TRIGGER_RECONCILE, txn.index, NodeID=node_id, NodeModifyIndex=txn.index)
        txn.put("eval", ev["ID"], ev)
        ids.append(ev["ID"])
    return ids


def _unblock(txn: Txn) -> list[str]:
    """A node that became eligible unblocks the blocked evaluations (Nomad's BlockedEvals):
    they are processed again."""
    ids = []
    for rec in txn.records("eval"):
        if rec.value["Status"] == "blocked":
            txn.put("eval", rec.key, dict(rec.value, Status="pending", ModifyIndex=txn.index, ModifyTime=now_ns()))
            ids.append(rec.key)
    return ids


def _became_eligible(state: State, node_id: str, out: NodeUpdate) -> None:
    with state.write() as txn:
        out.eval_ids = node_evals(txn, node_id) + _unblock(txn)
        out.eval_index = txn.index if out.eval_ids else 0


def update_drain(state: State, node_id: str, spec: dict[str, Any] | None, mark_eligible: bool,
                 meta: dict[str, str] | None) -> NodeUpdate:
    """Node.UpdateDrain: start, update or cancel the drain; a drain that starts migrates the node's
    allocations (system jobs' unless IgnoreSystemJobs) and completes."""
    if not node_id:
        raise NodeOpError("missing node ID for drain update")
    out = NodeUpdate()
    now = now_ns()
    with state.write() as txn:
        txn.event_type = "NodeDrain"
        node = _node(txn, node_id)
        was_eligible = node.get("SchedulingEligibility") == ELIGIBLE
        old = node.get("DrainStrategy")
        if spec is not None:
            deadline = int(spec.get("Deadline") or 0)
            node["DrainStrategy"] = {
                "Deadline": deadline, "IgnoreSystemJobs": bool(spec.get("IgnoreSystemJobs")),
                "StartedAt": old["StartedAt"] if old else _rfc3339(now),
                "ForceDeadline": _rfc3339(now + deadline) if deadline > 0 else "0001-01-01T00:00:00Z",
            }
            node["Drain"] = True
            node["SchedulingEligibility"] = INELIGIBLE
            if old is None:
                node.update(_DrainSince=now, _DrainMigrated=False)
                node["LastDrain"] = {"StartedAt": _rfc3339(now), "UpdatedAt": _rfc3339(now), "Status": "draining",
                                     "Meta": meta, "AccessorID": ""}
            _event(node, "Node drain strategy updated" if old else "Node drain strategy set", "Drain", txn.index)
        else:
            node["DrainStrategy"] = None
            node["Drain"] = False
            node.pop("_DrainSince", None)
            node.pop("_DrainMigrated", None)
            if mark_eligible:
                node["SchedulingEligibility"] = ELIGIBLE
            if old is not None:
                node["LastDrain"] = dict(node.get("LastDrain") or {}, Status="canceled", UpdatedAt=_rfc3339(now))
                _event(node, "Node drain disabled", "Drain", txn.index)
        _put_node(txn, node)
        out.index = txn.index
    if spec is None and mark_eligible and not was_eligible:
        _became_eligible(state, node_id, out)
    return out


def _covered(a: dict[str, Any], strategy: dict[str, Any]) -> bool:
    return not ((a.get("Job") or {}).get("Type") == "system" and strategy["IgnoreSystemJobs"])


def drain_step(state: State, node_id: str) -> bool:
    """One drainer pass over the node (the scheduler's): migrate once the batch window passed,
    complete once every allocation it covers is stopped on the client. Whether it wrote."""
    rec = state.get("node", node_id)
    strategy = rec.value.get("DrainStrategy") if rec else None
    if rec is None or strategy is None or now_ns() - int(rec.value.get("_DrainSince") or 0) < DRAIN_BATCH_NS:
        return False
    if not rec.value.get("_DrainMigrated"):
        _migrate_all(state, node_id)
        return True
    on_node = [a for a in state.values("alloc") if a["NodeID"] == node_id and _covered(a, strategy)]
    if any(a["ClientStatus"] not in ("complete", "failed", "lost") for a in on_node):
        return False
    with state.write() as txn:
        txn.event_type = "NodeDrain"
        node = _node(txn, node_id)
        if node.get("DrainStrategy") is None:
            return False  # cancelled meanwhile
        node.update(DrainStrategy=None, Drain=False,
                    LastDrain=dict(node.get("LastDrain") or {}, Status="complete", UpdatedAt=_rfc3339(now_ns())))
        node.pop("_DrainSince", None)
        node.pop("_DrainMigrated", None)
        _event(node, "Node drain complete", "Drain", txn.index)
        _put_node(txn, node)
    return True


def _migrate_all(state: State, node_id: str) -> None:
    """The drainer on a node with nowhere to migrate to: stop every allocation the drain covers;
    each job gets a node-drain evaluation, whose replacements cannot be placed."""
    now = now_ns()
    with state.write() as txn:
        node = _node(txn, node_id)
        strategy = node.get("DrainStrategy")
        if strategy is None:
            return  # cancelled meanwhile
        jobs: dict[str, dict[str, Any]] = {}
        for a in (r.value for r in txn.records("alloc")):
            if a["NodeID"] != node_id or is_terminal(a) or not _covered(a, strategy):
                continue
            txn.put("alloc", a["ID"], dict(a, DesiredStatus="stop", DesiredDescription=MIGRATING,
                                           DesiredTransition={**(a.get("DesiredTransition") or {}), "Migrate": True},
                                           ModifyIndex=txn.index, AllocModifyIndex=txn.index, ModifyTime=now))
            job_rec = txn.get("job", owner_key(a))
            if job_rec is not None:
                jobs[job_rec.key] = job_rec.value
        for job in jobs.values():
            ev = evaluation(job, "node-drain", txn.index, NodeID=node_id, NodeModifyIndex=node["ModifyIndex"])
            txn.put("eval", ev["ID"], ev)
        txn.put("node", node_id, dict(node, _DrainMigrated=True))


def update_eligibility(state: State, node_id: str, eligibility: str) -> NodeUpdate:
    """Node.UpdateEligibility."""
    if not node_id:
        raise NodeOpError("missing node ID for setting scheduling eligibility")
    if eligibility not in (ELIGIBLE, INELIGIBLE):
        raise NodeOpError(f'invalid scheduling eligibility "{eligibility}"')
    out = NodeUpdate()
    with state.write() as txn:
        txn.event_type = "NodeEligibility"
        node = _node(txn, node_id)
        if node.get("DrainStrategy") is not None and eligibility == ELIGIBLE:
            raise NodeOpError("can not set node's scheduling eligibility to eligible while it is draining")
        before = node.get("SchedulingEligibility")
        if before != eligibility:
            node["SchedulingEligibility"] = eligibility
            _event(node, "Node marked as eligible for scheduling" if eligibility == ELIGIBLE
                   else "Node marked as ineligible for scheduling", "Cluster", txn.index)
            _put_node(txn, node)
        out.index = txn.index
    if before == INELIGIBLE and eligibility == ELIGIBLE:
        _became_eligible(state, node_id, out)
    return out


def evaluate(state: State, node_id: str) -> NodeUpdate:
    """Node.Evaluate: node-update evaluations for the node's jobs."""
    if not node_id:
        raise NodeOpError("missing node ID for evaluation")
    out = NodeUpdate()
    with state.write() as txn:
        _node(txn, node_id)
        out.eval_ids = node_evals(txn, node_id)
        out.eval_index = out.index = txn.index if out.eval_ids else 0
    return out


def purge(state: State, node_id: str) -> NodeUpdate:
    """Node.Deregister: the node leaves the state, and its jobs are evaluated. The evaluations run
    while the node is gone, as Nomad's scheduler runs them before the client's next heartbeat: its
    live allocations are lost, and with no other node their replacements are a placement failure
    (a blocked evaluation). A live client joins again at its next heartbeat (the caller re-registers
    this agent's own node: `rejoined`), eligible and without the drain it had, as a new registration."""
    if not node_id:
        raise NodeOpError("missing node ID for client deregistration")
    out = NodeUpdate()
    with state.write() as txn:
        txn.event_type = "NodeDeregistration"
        _node(txn, node_id)
        out.eval_ids = node_evals(txn, node_id)
        txn.delete("node", node_id)
        out.index = txn.index
        out.eval_index = txn.index if out.eval_ids else 0
        # in the same transaction: no scheduler pass can take these evaluations in between and
        # decide them with the node it read before the purge (its allocations would not be lost)
        for eval_id in out.eval_ids:
            evals.process_in(txn, eval_id, None)  # no node to place on
    return out


def rejoined(txn: Txn, node_id: str) -> list[str]:
    """A node registered anew (Node.Register of a node the state does not hold): a ready node
    unblocks the blocked evaluations (Nomad's FSM) and gets node-update evaluations."""
    return node_evals(txn, node_id) + _unblock(txn)

"""Process one evaluation: plan the job against the node and write the result in one transaction.

decide(EvalInputs) -> EvalDecision is pure (the state it read, the node and the clock in; the
documents to write out); process() reads the inputs and applies the writes in one transaction.

Writes: allocations placed/stopped/updated, the deployment (created, reused or cancelled), the
evaluation's outcome (complete, with FailedTGAllocs and a blocked follow-up when placements failed).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.nomad import canaries, planner, ports, reschedule, spec
from nomadmesh.agent.nomad.feasibility import group_network_mode
from nomadmesh.agent.nomad.jobs import is_parameterized
from nomadmesh.agent.nomad.structs import (
    DEPLOYMENT_CANCELLED,
    DEPLOYMENT_FAILED,
    DEPLOYMENT_PAUSED,
    DEPLOYMENT_RUNNING,
    DESC_LOST,
    DESC_MIGRATING,
    DESC_NEWER,
    DESC_STOPPED,
    TRIGGER_ALLOC_FAILURE,
    TRIGGER_QUEUED,
    allocation,
    deployment,
    evaluation,
    is_terminal,
    now_ns,
    owner_key,
)
from nomadmesh.agent.state import State, Txn

log = logging.getLogger("nomadmesh.agent.nomad.scheduler")


def _has_update(tg: dict[str, Any]) -> bool:
    return int((tg.get("Update") or {}).get("MaxParallel") or 0) > 0


class Writes:
    """The documents one evaluation writes, keyed (kind, key) in write order; a later write of the
    same key replaces the earlier one, as it would in the transaction."""

    def __init__(self, index: int, now: int):
        self.index = index
        self.now = now
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self.docs.pop((kind, key), None)
        self.docs[(kind, key)] = doc

    def latest(self, kind: str, key: str, stored: dict[str, Any]) -> dict[str, Any]:
        """The document as written so far in this evaluation, else as stored."""
        return self.docs.get((kind, key), stored)

    def stop(self, alloc: dict[str, Any], why: str, **extra: Any) -> None:
        self.put("alloc", alloc["ID"], dict(alloc, DesiredStatus="stop", DesiredDescription=why,
                                            ModifyIndex=self.index, AllocModifyIndex=self.index,
                                            ModifyTime=self.now, **extra))


def _destructive_limit(job: dict[str, Any], dep: dict[str, Any] | None, allocs: list[dict[str, Any]]):
    """Nomad's rolling update: at most max_parallel allocations of the deployment unhealthy at once."""
    def limit(group: str) -> int:
        tg = next((g for g in job["TaskGroups"] if g["Name"] == group), None)
        if tg is None or not _has_update(tg):
            return 1 << 30
        if dep is None:
            return int(tg["Update"]["MaxParallel"])
        if dep["Status"] != DEPLOYMENT_RUNNING:
            # a failed or paused deployment replaces nothing more (Nomad's deploymentPlaceReady)
            return 0 if dep["Status"] in (DEPLOYMENT_FAILED, DEPLOYMENT_PAUSED) else int(tg["Update"]["MaxParallel"])
        in_flight = sum(1 for a in allocs if a.get("DeploymentID") == dep["ID"] and a["TaskGroup"] == group
                        and a["DesiredStatus"] == "run"
                        and (a.get("DeploymentStatus") or {}).get("Healthy") is None)
        return max(0, int(tg["Update"]["MaxParallel"]) - in_flight)
    return limit


def _follow_up_later(out: Writes, job: dict[str, Any], ev: dict[str, Any], evals: dict[str, dict[str, Any]],
                     failed: list[tuple[dict[str, Any], int]]) -> None:
    """A failed allocation due for rescheduling later gets a follow-up evaluation that waits
    until then (WaitUntil), unless it already has one pending."""
    for alloc, when in failed:
        follow = evals.get(alloc.get("FollowupEvalID") or "")
        if follow is not None and follow["Status"] == "pending":
            continue
        later = evaluation(job, TRIGGER_ALLOC_FAILURE, out.index, PreviousEval=ev["ID"],
                           StatusDescription=reschedule.DESC_FOLLOWUP,
                           WaitUntil=reschedule.wait_until_text(when), _WaitUntilNs=when)
        out.put("eval", later["ID"], later)
        out.put("alloc", alloc["ID"], dict(alloc, FollowupEvalID=later["ID"], ModifyIndex=out.index,
                                           AllocModifyIndex=out.index, ModifyTime=out.now))


def _record_canaries(out: Writes, dep_id: str, current: dict[str, Any] | None, group: str, desired: int,
                     placed: list[str]) -> None:
    """The group's DesiredCanaries and PlacedCanaries in the deployment (Nomad's plan applier)."""
    stored = current if current is not None and current["ID"] == dep_id else None
    doc = out.latest("deployment", dep_id, stored or {})
    if not doc or group not in doc["TaskGroups"]:
        return
    dstate = dict(doc["TaskGroups"][group])
    dstate["DesiredCanaries"] = desired or dstate.get("DesiredCanaries", 0)
    dstate["PlacedCanaries"] = [*(dstate.get("PlacedCanaries") or []), *placed]
    out.put("deployment", dep_id, dict(doc, TaskGroups={**doc["TaskGroups"], group: dstate},
                                       ModifyIndex=out.index))


def due(ev: dict[str, Any], now: int) -> bool:
    """A pending evaluation may run: it has no WaitUntil, or that time has come."""
    return int(ev.get("_WaitUntilNs") or 0) <= now


def failure_evals(state: State) -> int:
    """Nomad's client update: every allocation that newly turned failed while desired running gets
    an "alloc-failure" evaluation, so its reschedule policy is applied. Returns how many."""
    made = 0
    fresh = [a for a in state.values("alloc") if a["ClientStatus"] == "failed" and a["DesiredStatus"] == "run"
             and not a.get("_FailureEvaluated")]
    if not fresh:
        return 0
    with state.write() as txn:
        for a in fresh:
            cur = txn.get("alloc", a["ID"])
            job = txn.get("job", owner_key(a))
            if cur is None or cur.value.get("_FailureEvaluated"):
                continue
            txn.put("alloc", a["ID"], dict(cur.value, _FailureEvaluated=True))
            if job is None:
                continue
            e = evaluation(job.value, TRIGGER_ALLOC_FAILURE, txn.index)
            txn.put("eval", e["ID"], e)
            made += 1
    return made


@dataclass(frozen=True)
class EvalInputs:
    """What one evaluation reads: the state as its transaction sees it, the node, the clock."""
    ev: dict[str, Any]
    job: dict[str, Any] | None
    all_allocs: list[dict[str, Any]]
    deployments: list[dict[str, Any]]  # this job's
    evals: dict[str, dict[str, Any]]  # every evaluation, by ID (follow-ups, blocked ones)
    node: dict[str, Any] | None  # the node to place on; None: there is none (a purge)
    index: int  # the transaction's index: the Create/ModifyIndex of everything written
    now: int  # ns
    nodes: frozenset[str] | None = None  # IDs of the registered nodes (None: `node` alone)

    @property
    def node_ids(self) -> frozenset[str]:
        if self.nodes is not None:
            return self.nodes
        return frozenset({self.node["ID"]}) if self.node else frozenset()


def _lost(inp: EvalInputs, job_allocs: list[dict[str, Any]]) -> set[str]:
    """Nomad's lost allocations: live ones on a node that no longer exists (purged), unless already
    asked to migrate (scheduler/reconciler/filters.go: a nil tainted node means lost)."""
    return {a["ID"] for a in job_allocs if a["NodeID"] not in inp.node_ids and not is_terminal(a)
            and not (a.get("DesiredTransition") or {}).get("Migrate")}


@dataclass
class EvalDecision:
    """What an evaluation decided: the documents to write, and the per-group changes for the log."""
    writes: Writes
    changes: dict[str, Any]


def decide(inp: EvalInputs) -> EvalDecision:
    """Plan the job against the node: allocations placed/stopped/updated, deployments cancelled or
    created, follow-up and blocked evaluations, and the evaluation's outcome. No I/O."""
    ev, job, all_allocs, now = dict(inp.ev), inp.job, inp.all_allocs, inp.now
    out = Writes(inp.index, now)
    job_allocs = [a for a in all_allocs if owner_key(a) == owner_key(ev)]
    lost = _lost(inp, job_allocs)
    for a in job_allocs:
        if a["ID"] in lost:  # marked lost whether or not a replacement can be placed
            out.stop(a, DESC_LOST, ClientStatus="lost")
    node = inp.node if inp.node is not None and inp.node["ID"] in inp.node_ids else None
    deps = sorted(inp.deployments, key=lambda d: -d["CreateIndex"])
    current = canaries.current_deployment(job, deps)
    stopped = job is None or bool(job.get("Stop")) or is_parameterized(job)  # a parent is never placed
    # The reconciler replaces a lost allocation as one asked to migrate (the replacement links back);
    # a stopped job has nothing to replace it with.
    job_allocs = [dict(a, DesiredTransition={"Migrate": True}) if a["ID"] in lost else a
                  for a in job_allocs if not (stopped and a["ID"] in lost)]
    limit = (lambda _g: 1 << 30) if stopped or job is None else _destructive_limit(job, current, job_allocs)
    active_deps = {d["ID"] for d in deps if d["Status"] in (DEPLOYMENT_RUNNING, DEPLOYMENT_PAUSED)}
    placed = None if job is not None and is_parameterized(job) else job
    plan = planner.plan_job(placed, job_allocs, all_allocs, node, spec.update_kind, limit, now, active_deps,
                            current, canaries.stale(deps, current))

    # Deployments: cancel what a stop or a newer version makes moot, start one for this version.
    for d in deps:
        if d["ID"] in active_deps and (stopped or d is not current):
            out.put("deployment", d["ID"], dict(d, Status=DEPLOYMENT_CANCELLED,
                                                StatusDescription=DESC_STOPPED if stopped else DESC_NEWER,
                                                ModifyIndex=out.index, ModifyTime=now))
    dep_id = current["ID"] if current and current["Status"] == DEPLOYMENT_RUNNING else ""
    if job is not None and not stopped and job.get("Type", "service") == "service" and current is None:
        desired = {tg["Name"]: int(tg.get("Count", 1)) for tg in job["TaskGroups"] if _has_update(tg)}
        wanted = any(p.place or p.destructive or p.inplace or p.canaries
                     for n, p in plan.groups.items() if n in desired)
        if desired and wanted:
            dep = deployment(job, out.index, desired)
            for name, gp in plan.groups.items():
                if gp.desired_canaries and name in dep["TaskGroups"]:
                    dep["TaskGroups"][name]["DesiredCanaries"] = gp.desired_canaries
            dep["StatusDescription"] = canaries.created_description(dep)
            out.put("deployment", dep["ID"], dep)
            dep_id = dep["ID"]

    by_id = {a["ID"]: a for a in job_allocs}
    taken = set(planner.used_static_ports(all_allocs, set()))
    for name, gp in plan.groups.items():
        why = "alloc not needed as job is stopped" if stopped else "alloc not needed due to job update"
        for aid in gp.stop:
            if aid not in lost:  # already stopped as lost
                out.stop(by_id[aid], why)
        for aid in gp.inplace:
            a = by_id[aid]
            joined = {"_Joined": now, "_HealthySince": None} if dep_id else {}
            assert job is not None  # an in-place update is of a job that exists
            out.put("alloc", aid, dict(a, Job=job, JobVersion=job["Version"],
                                       DeploymentID=dep_id or a.get("DeploymentID", ""),
                                       DeploymentStatus=None if dep_id else a.get("DeploymentStatus"),
                                       ModifyIndex=out.index, AllocModifyIndex=out.index, ModifyTime=now,
                                       **joined))
        if name in plan.failed or stopped or job is None:
            continue
        tg = next(g for g in job["TaskGroups"] if g["Name"] == name)
        _follow_up_later(out, job, ev, inp.evals, [(by_id[aid], when) for aid, when in gp.reschedule_later])
        paused = current is not None and current["Status"] == DEPLOYMENT_PAUSED and name in current["TaskGroups"]
        # (index, the allocation replaced, rescheduled, canary)
        placements = [(i, "", False, False) for i in ([] if paused else gp.place)] \
            + [(i, aid, False, False) for aid, i in gp.destructive] \
            + [(i, aid, True, False) for aid, i in gp.reschedule_now]
        migrating = {aid for aid, _i in gp.migrate}
        placements += [(i, aid, False, False) for aid, i in gp.migrate]
        placements += [(i, "", False, True) for i in gp.canaries if dep_id]
        placed_canaries: list[str] = []
        for i, previous, rescheduled, canary in placements:
            try:
                assigned = ports.assign(tg, taken)
            except ports.PortsExhausted as e:
                plan.failed[name] = {"DimensionExhausted": {str(e): 1}, "NodesEvaluated": 1, "NodesExhausted": 1}
                break
            taken |= {p["Value"] for p in assigned}
            if previous and previous not in lost:
                out.stop(by_id[previous], reschedule.DESC_RESCHEDULED if rescheduled
                         else DESC_MIGRATING if previous in migrating
                         else "alloc is being updated due to job update")
            assert node is not None  # placements are only planned on a node
            new = allocation(job, name, i, ev["ID"], node, assigned, group_network_mode(tg), dep_id,
                             out.index, previous)
            if rescheduled:
                new["RescheduleTracker"] = reschedule.tracker_for_replacement(by_id[previous], now)
            if canary:
                new["DeploymentStatus"] = canaries.new_canary_status()
                placed_canaries.append(new["ID"])
            new["_Joined"] = now
            out.put("alloc", new["ID"], new)
            if previous:
                prev = out.latest("alloc", previous, by_id[previous])
                out.put("alloc", previous, dict(prev, NextAllocation=new["ID"]))
        if dep_id and (placed_canaries or gp.desired_canaries):
            _record_canaries(out, dep_id, current, name, gp.desired_canaries, placed_canaries)

    # Older blocked evaluations of this job are superseded by this one.
    for older in inp.evals.values():
        if owner_key(older) == owner_key(ev) and older["Status"] == "blocked" and older["ID"] != ev["ID"]:
            out.put("eval", older["ID"], dict(older, Status="canceled", StatusDescription="evaluation superseded",
                                          ModifyIndex=out.index, ModifyTime=now))
    ev.update(Status="complete", DeploymentID=dep_id, ModifyIndex=out.index, ModifyTime=now,
              QueuedAllocations=dict.fromkeys(plan.groups, 0))
    if plan.failed and job is not None:  # placements (and so failures) are only of a job that exists
        blocked = evaluation(job, TRIGGER_QUEUED, out.index, Status="blocked", PreviousEval=ev["ID"],
                             StatusDescription="created to place remaining allocations",
                             FailedTGAllocs=copy.deepcopy(plan.failed))
        out.put("eval", blocked["ID"], blocked)
        ev.update(FailedTGAllocs=plan.failed, BlockedEval=blocked["ID"],
                  QueuedAllocations={n: (len(p.place) + len(p.destructive) if n in plan.failed else 0)
                                     for n, p in plan.groups.items()})
    out.put("eval", ev["ID"], ev)
    return EvalDecision(out, {n: p.annotations() for n, p in plan.groups.items() if p.changes})


def read_inputs(txn: Txn, ev: dict[str, Any], node: dict[str, Any] | None) -> EvalInputs:
    """What the evaluation reads; the registered nodes are the state's and `node` (None: no node to
    place on, as after a purge)."""
    registered = frozenset(r.key for r in txn.records("node")) | ({node["ID"]} if node else set())
    job_rec = txn.get("job", owner_key(ev))
    return EvalInputs(
        ev=ev, job=job_rec.value if job_rec else None,
        all_allocs=[r.value for r in txn.records("alloc")],
        deployments=[r.value for r in txn.records("deployment") if owner_key(r.value) == owner_key(ev)],
        evals={r.key: r.value for r in txn.records("eval")},
        node=node, index=txn.index, now=now_ns(), nodes=registered)


def process(state: State, eval_id: str, node: dict[str, Any] | None) -> None:
    """Decide the pending evaluation `eval_id` on what one transaction reads, then write what was
    decided in that same transaction."""
    with state.write() as txn:
        process_in(txn, eval_id, node)


def process_on_node(state: State, eval_id: str, node_id: str) -> None:
    """process() with the client's node as the same transaction reads it: a node purged since the
    caller last looked (another writer, in between) has nothing placed on it, and its allocations
    are lost, as the purge decided."""
    with state.write() as txn:
        rec = txn.get("node", node_id)
        process_in(txn, eval_id, rec.value if rec else None)


def process_in(txn: Txn, eval_id: str, node: dict[str, Any] | None) -> None:
    """process() inside the caller's transaction."""
    rec = txn.get("eval", eval_id)
    if rec is None or rec.value["Status"] != "pending":
        return
    decision = decide(read_inputs(txn, rec.value, node))
    for (kind, key), doc in decision.writes.docs.items():
        txn.put(kind, key, doc)
    log.info("evaluation %s for job %s: %s", eval_id[:8], rec.value["JobID"], decision.changes or "no changes")

"""Process one evaluation: plan the job against the node and write the result in one transaction.

Writes: allocations placed/stopped/updated, the deployment (created, reused or cancelled), the
evaluation's outcome (complete, with FailedTGAllocs and a blocked follow-up when placements failed).
"""
from __future__ import annotations

import copy
import logging
from typing import Any

from nomadmesh.agent.nomad import planner, ports, reschedule, spec
from nomadmesh.agent.nomad.feasibility import group_network_mode
from nomadmesh.agent.nomad.structs import (
    DEPLOYMENT_CANCELLED, DEPLOYMENT_FAILED, DEPLOYMENT_RUNNING, DESC_NEWER, DESC_STOPPED, TRIGGER_ALLOC_FAILURE,
    TRIGGER_QUEUED, allocation, deployment, evaluation, now_ns,
)
from nomadmesh.agent.state import State, Txn

log = logging.getLogger("nomadmesh.agent.nomad.scheduler")


def _has_update(tg: dict[str, Any]) -> bool:
    return int((tg.get("Update") or {}).get("MaxParallel") or 0) > 0


def _stop(txn: Txn, alloc: dict[str, Any], why: str) -> None:
    alloc = dict(alloc, DesiredStatus="stop", DesiredDescription=why, ModifyIndex=txn.index,
                 AllocModifyIndex=txn.index, ModifyTime=now_ns())
    txn.put("alloc", alloc["ID"], alloc)


def _destructive_limit(job: dict[str, Any], dep: dict[str, Any] | None, allocs: list[dict[str, Any]]):
    """Nomad's rolling update: at most max_parallel allocations of the deployment unhealthy at once."""
    def limit(group: str) -> int:
        tg = next((g for g in job["TaskGroups"] if g["Name"] == group), None)
        if tg is None or not _has_update(tg):
            return 1 << 30
        if dep is None:
            return int(tg["Update"]["MaxParallel"])
        if dep["Status"] != DEPLOYMENT_RUNNING:
            return 0 if dep["Status"] == DEPLOYMENT_FAILED else int(tg["Update"]["MaxParallel"])
        in_flight = sum(1 for a in allocs if a.get("DeploymentID") == dep["ID"] and a["TaskGroup"] == group
                        and a["DesiredStatus"] == "run"
                        and (a.get("DeploymentStatus") or {}).get("Healthy") is None)
        return max(0, int(tg["Update"]["MaxParallel"]) - in_flight)
    return limit


def _follow_up_later(txn: Txn, job: dict[str, Any], ev: dict[str, Any],
                     failed: list[tuple[dict[str, Any], int]]) -> None:
    """A failed allocation due for rescheduling later gets a follow-up evaluation that waits
    until then (WaitUntil), unless it already has one pending."""
    for alloc, when in failed:
        follow = txn.get("eval", alloc.get("FollowupEvalID") or "") if alloc.get("FollowupEvalID") else None
        if follow is not None and follow.value["Status"] == "pending":
            continue
        later = evaluation(job, TRIGGER_ALLOC_FAILURE, txn.index, PreviousEval=ev["ID"],
                           StatusDescription=reschedule.DESC_FOLLOWUP,
                           WaitUntil=reschedule.wait_until_text(when), _WaitUntilNs=when)
        txn.put("eval", later["ID"], later)
        txn.put("alloc", alloc["ID"], dict(alloc, FollowupEvalID=later["ID"], ModifyIndex=txn.index,
                                           AllocModifyIndex=txn.index, ModifyTime=now_ns()))


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
            job = txn.get("job", a["JobID"])
            if cur is None or cur.value.get("_FailureEvaluated"):
                continue
            txn.put("alloc", a["ID"], dict(cur.value, _FailureEvaluated=True))
            if job is None:
                continue
            e = evaluation(job.value, TRIGGER_ALLOC_FAILURE, txn.index)
            txn.put("eval", e["ID"], e)
            made += 1
    return made


def process(state: State, eval_id: str, node: dict[str, Any]) -> None:
    with state.write() as txn:
        rec = txn.get("eval", eval_id)
        if rec is None or rec.value["Status"] != "pending":
            return
        ev = dict(rec.value)
        job_rec = txn.get("job", ev["JobID"])
        job = job_rec.value if job_rec else None
        all_allocs = [r.value for r in txn.records("alloc")]
        job_allocs = [a for a in all_allocs if a["JobID"] == ev["JobID"]]
        deps = sorted((r.value for r in txn.records("deployment") if r.value["JobID"] == ev["JobID"]),
                      key=lambda d: -d["CreateIndex"])
        # A job purged and registered again restarts at version 0: JobCreateIndex tells them apart.
        current = next((d for d in deps if job and d["JobVersion"] == job["Version"]
                        and d.get("JobCreateIndex", 0) == job.get("CreateIndex", 0)), None)
        stopped = job is None or bool(job.get("Stop"))
        limit = (lambda _g: 1 << 30) if stopped else _destructive_limit(job, current, job_allocs)
        now = now_ns()
        active_deps = {d["ID"] for d in deps if d["Status"] == DEPLOYMENT_RUNNING}
        plan = planner.plan_job(job, job_allocs, all_allocs, node, spec.update_kind, limit, now, active_deps)

        # Deployments: cancel what a stop or a newer version makes moot, start one for this version.
        for d in deps:
            if d["Status"] == DEPLOYMENT_RUNNING and (stopped or d is not current):
                txn.put("deployment", d["ID"], dict(d, Status=DEPLOYMENT_CANCELLED,
                                                    StatusDescription=DESC_STOPPED if stopped else DESC_NEWER,
                                                    ModifyIndex=txn.index, ModifyTime=now_ns()))
        dep_id = current["ID"] if current and current["Status"] == DEPLOYMENT_RUNNING else ""
        if not stopped and job.get("Type", "service") == "service" and current is None:
            desired = {tg["Name"]: int(tg.get("Count", 1)) for tg in job["TaskGroups"] if _has_update(tg)}
            wanted = any(p.place or p.destructive or p.inplace for n, p in plan.groups.items() if n in desired)
            if desired and wanted:
                dep = deployment(job, txn.index, desired)
                txn.put("deployment", dep["ID"], dep)
                dep_id = dep["ID"]

        by_id = {a["ID"]: a for a in job_allocs}
        taken = set(planner.used_static_ports(all_allocs, set()))
        for name, gp in plan.groups.items():
            why = "alloc not needed as job is stopped" if stopped else "alloc not needed due to job update"
            for aid in gp.stop:
                _stop(txn, by_id[aid], why)
            for aid in gp.inplace:
                a = by_id[aid]
                joined = {"_Joined": now_ns(), "_HealthySince": None} if dep_id else {}
                txn.put("alloc", aid, dict(a, Job=job, JobVersion=job["Version"], DeploymentID=dep_id or a.get("DeploymentID", ""),
                                           DeploymentStatus=None if dep_id else a.get("DeploymentStatus"),
                                           ModifyIndex=txn.index, AllocModifyIndex=txn.index, ModifyTime=now_ns(),
                                           **joined))
            if name in plan.failed or stopped:
                continue
            tg = next(g for g in job["TaskGroups"] if g["Name"] == name)
            _follow_up_later(txn, job, ev, [(by_id[aid], when) for aid, when in gp.reschedule_later])
            placements = [(i, "", False) for i in gp.place] + [(i, aid, False) for aid, i in gp.destructive] \
                + [(i, aid, True) for aid, i in gp.reschedule_now]
            for i, previous, rescheduled in placements:
                try:
                    assigned = ports.assign(tg, taken)
                except ports.PortsExhausted as e:
                    plan.failed[name] = {"DimensionExhausted": {str(e): 1}, "NodesEvaluated": 1, "NodesExhausted": 1}
                    break
                taken |= {p["Value"] for p in assigned}
                if previous:
                    _stop(txn, by_id[previous], reschedule.DESC_RESCHEDULED if rescheduled
                          else "alloc is being updated due to job update")
                new = allocation(job, name, i, ev["ID"], node, assigned, group_network_mode(tg), dep_id,
                                 txn.index, previous)
                if rescheduled:
                    new["RescheduleTracker"] = reschedule.tracker_for_replacement(by_id[previous], now)
                new["_Joined"] = now_ns()
                txn.put("alloc", new["ID"], new)
                if previous:
                    prev = txn.get("alloc", previous).value
                    txn.put("alloc", previous, dict(prev, NextAllocation=new["ID"]))

        # Older blocked evaluations of this job are superseded by this one.
        for r in txn.records("eval"):
            e = r.value
            if e["JobID"] == ev["JobID"] and e["Status"] == "blocked" and e["ID"] != ev["ID"]:
                txn.put("eval", e["ID"], dict(e, Status="canceled", StatusDescription="evaluation superseded",
                                              ModifyIndex=txn.index, ModifyTime=now_ns()))
        ev.update(Status="complete", DeploymentID=dep_id, ModifyIndex=txn.index, ModifyTime=now_ns(),
                  QueuedAllocations={n: 0 for n in plan.groups})
        if plan.failed:
            blocked = evaluation(job, TRIGGER_QUEUED, txn.index, Status="blocked", PreviousEval=ev["ID"],
                                 StatusDescription="created to place remaining allocations",
                                 FailedTGAllocs=copy.deepcopy(plan.failed))
            txn.put("eval", blocked["ID"], blocked)
            ev.update(FailedTGAllocs=plan.failed, BlockedEval=blocked["ID"],
                      QueuedAllocations={n: (len(p.place) + len(p.destructive) if n in plan.failed else 0)
                                         for n, p in plan.groups.items()})
        txn.put("eval", ev["ID"], ev)
    log.info("evaluation %s for job %s: %s", eval_id[:8], ev["JobID"],
             {n: p.annotations() for n, p in plan.groups.items() if p.changes} or "no changes")

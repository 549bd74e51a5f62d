"""Operator actions on a deployment: promote (canaries), fail (rolling back when auto_revert),
pause/resume, and manual allocation health — as Nomad's Deployment.Promote/Fail/Pause/SetAllocHealth
RPCs and its deployment watcher do.

Facts from Nomad's nomad/deployment_endpoint.go, nomad/deploymentwatcher/deployment_watcher.go and
state_store.go (UpdateDeploymentAllocHealth): only an active (running or paused) deployment can be
changed; failing rolls back to the latest stable job version unless it has the job's current spec;
every change but a pause creates a "deployment-watcher" evaluation. A failed deployment's
unpromoted canaries are stopped by that evaluation (nomad/reconcile.py), so the old allocations
keep serving.
"""
from __future__ import annotations

import json
from typing import Any

from nomadmesh.agent.nomad import canaries, health, jobs
from nomadmesh.agent.nomad.structs import (
    DEPLOYMENT_FAILED,
    DEPLOYMENT_PAUSED,
    DEPLOYMENT_RUNNING,
    DESC_FAILED_BY_USER,
    DESC_PAUSED,
    DESC_RUNNING,
    DESC_UNHEALTHY,
    TRIGGER_DEPLOYMENT,
    evaluation,
    namespace_of,
    now_ns,
    owner_key,
)
from nomadmesh.agent.runtime.events import rfc3339
from nomadmesh.agent.state import State, Txn

ACTIVE = (DEPLOYMENT_RUNNING, DEPLOYMENT_PAUSED)


class DeploymentRefused(Exception):
    """Nomad answers these with a 500 carrying this text."""


def _active(txn: Txn, dep_id: str, terminal_error: str) -> dict[str, Any]:
    rec = txn.get("deployment", dep_id)
    if rec is None:
        raise DeploymentRefused("deployment not found")
    if rec.value["Status"] not in ACTIVE:
        raise DeploymentRefused(terminal_error)
    return rec.value


def _rollback_target(txn: Txn, dep: dict[str, Any], desc: str, say_none: bool = True) -> tuple[int | None, str]:
    """Nomad's latestStableJob + handleRollbackValidity: (version to revert to or None, description).
    `say_none`: the description says when there is no stable version (Fail does, SetAllocHealth not)."""
    job = txn.get("job", owner_key(dep))
    versions = sorted((r.value for r in jobs.versions(txn, namespace_of(dep), dep["JobID"])),
                      key=lambda v: -v["Version"])
    stable = next((v for v in versions if v.get("Stable")), None)
    if stable is None or job is None:
        return None, f"{desc} - no stable job version to auto revert to" if say_none else desc
    if not jobs.spec_changed(job.value, stable):
        return None, (f"{desc} - not rolling back to stable job version {stable['Version']} "
                      "as current job has same specification")
    return stable["Version"], f"{desc} - rolling back to job version {stable['Version']}"


def _set_status(txn: Txn, dep: dict[str, Any], status: str, desc: str, now: int,
                groups: dict[str, Any] | None = None) -> None:
    txn.put("deployment", dep["ID"], dict(dep, Status=status, StatusDescription=desc, ModifyIndex=txn.index,
                                          ModifyTime=now, TaskGroups=groups or dep["TaskGroups"]))


def _eval(txn: Txn, dep: dict[str, Any]) -> dict[str, Any]:
    job = txn.get("job", owner_key(dep))
    ev = evaluation(job.value if job else {"ID": dep["JobID"], "Namespace": dep["Namespace"]},
                    TRIGGER_DEPLOYMENT, txn.index, DeploymentID=dep["ID"])
    txn.put("eval", ev["ID"], ev)
    return ev


def _reply(index: int, eval_id: str = "", reverted: int | None = None) -> dict[str, Any]:
    return {"EvalID": eval_id, "EvalCreateIndex": index if eval_id else 0, "DeploymentModifyIndex": index,
            "RevertedJobVersion": reverted, "Index": index, "LastContact": 0, "KnownLeader": True}


def _finish(state: State, dep: dict[str, Any], index: int, eval_id: str, revert_to: int | None) -> dict[str, Any]:
    """After the deployment's write: roll the job back (its own transaction and evaluation, which is
    then the reply's, so one evaluation follows the action as in Nomad)."""
    if revert_to is None:
        return _reply(index, eval_id)
    try:
        out = jobs.revert(state, dep["JobID"], revert_to, TRIGGER_DEPLOYMENT, namespace=namespace_of(dep))
    except jobs.RevertRefused:  # purged meanwhile: nothing to roll back
        return _reply(index, eval_id)
    return _reply(out["Index"], out["EvalID"], revert_to)


def _auto_revert(dep: dict[str, Any], groups: list[str] | None = None) -> bool:
    wanted = dep["TaskGroups"] if groups is None else {g: dep["TaskGroups"][g] for g in groups
                                                         if g in dep["TaskGroups"]}
    return any(g.get("AutoRevert") for g in wanted.values())


def fail(state: State, dep_id: str) -> dict[str, Any]:
    """`nomad deployment fail`: failed by the operator, rolled back when a group has auto_revert."""
    now = now_ns()
    with state.write() as txn:
        dep = _active(txn, dep_id, "can't fail terminal deployment")
        revert_to, desc = None, DESC_FAILED_BY_USER
        if _auto_revert(dep):
            revert_to, desc = _rollback_target(txn, dep, desc)
        _set_status(txn, dep, DEPLOYMENT_FAILED, desc, now)
        ev = _eval(txn, dep) if revert_to is None else None
    return _finish(state, dep, txn.index, ev["ID"] if ev else "", revert_to)


def promote(state: State, dep_id: str, groups: list[str] | None) -> dict[str, Any]:
    """`nomad deployment promote [-group g]`: the canaries of all (None) or the named groups become
    the new version's allocations and the rolling update goes on; refused unless they are healthy."""
    with state.write() as txn:
        dep = _active(txn, dep_id, "can't promote terminal deployment")
        ev = _promote(txn, dep, groups)
    return _reply(txn.index, ev["ID"])


def _promote(txn: Txn, dep: dict[str, Any], groups: list[str] | None) -> dict[str, Any]:
    now = now_ns()
    allocs = [r.value for r in txn.records("alloc") if r.value.get("DeploymentID") == dep["ID"]]
    try:
        promoted, ids = canaries.promote(dep, allocs, groups, now)
    except canaries.PromotionRefused as e:
        raise DeploymentRefused(str(e)) from None
    txn.put("deployment", dep["ID"], dict(promoted, ModifyIndex=txn.index))
    for alloc in allocs:
        if alloc["ID"] in ids:
            status = dict(alloc["DeploymentStatus"], Canary=False, ModifyIndex=txn.index)
            txn.put("alloc", alloc["ID"], dict(alloc, DeploymentStatus=status, ModifyIndex=txn.index,
                                               AllocModifyIndex=txn.index))
    return _eval(txn, dep)


def auto_promote(state: State, dep_id: str) -> bool:
    """The deployment watcher's autoPromoteDeployment: promote all once every canary group has
    auto_promote and healthy canaries. True when it promoted."""
    with state.write() as txn:
        rec = txn.get("deployment", dep_id)
        if rec is None or rec.value["Status"] != DEPLOYMENT_RUNNING:
            return False
        allocs = [r.value for r in txn.records("alloc") if r.value.get("DeploymentID") == dep_id]
        if not canaries.auto_promote_ready(rec.value, allocs):
            return False
        _promote(txn, rec.value, None)
    return True


def pause(state: State, dep_id: str, paused: bool) -> dict[str, Any]:
    """`nomad deployment pause|resume`: a paused deployment places nothing until resumed."""
    terminal = "can't pause terminal deployment" if paused else "can't resume terminal deployment"
    with state.write() as txn:
        dep = _active(txn, dep_id, terminal)
        if paused:
            _set_status(txn, dep, DEPLOYMENT_PAUSED, DESC_PAUSED, now_ns())
            return _reply(txn.index)
        _set_status(txn, dep, DEPLOYMENT_RUNNING, DESC_RUNNING, now_ns())
        ev = _eval(txn, dep)
    return _reply(txn.index, ev["ID"])


def set_alloc_health(state: State, dep_id: str, healthy: list[str], unhealthy: list[str]) -> dict[str, Any]:
    """`nomad deployment promote`'s sibling for `health_check = "manual"`: mark allocations healthy or
    unhealthy; an unhealthy one fails the deployment (and rolls back when its group has auto_revert)."""
    if not healthy and not unhealthy:
        raise DeploymentRefused("must specify at least one healthy/unhealthy allocation ID")
    now = now_ns()
    with state.write() as txn:
        dep = _active(txn, dep_id, "can't set health of allocations for a terminal deployment")
        marked: dict[str, dict[str, Any]] = {}
        for ids, verdict in ((healthy, True), (unhealthy, False)):
            for aid in ids:
                rec = txn.get("alloc", aid)
                if rec is None:
                    raise DeploymentRefused(f"unknown alloc {json.dumps(aid)}")
                if rec.value.get("DeploymentID") != dep_id:
                    raise DeploymentRefused(f"alloc {json.dumps(aid)} is not part of deployment {json.dumps(dep_id)}")
                doc = marked.get(aid, rec.value)
                marked[aid] = dict(doc, ModifyIndex=txn.index, ModifyTime=now, DeploymentStatus={
                    **(doc.get("DeploymentStatus") or {}), "Healthy": verdict, "Timestamp": rfc3339(now),
                    "Canary": bool((doc.get("DeploymentStatus") or {}).get("Canary")), "ModifyIndex": txn.index})
        for aid, doc in marked.items():
            txn.put("alloc", aid, doc)
        allocs = [r.value for r in txn.records("alloc") if r.value.get("DeploymentID") == dep_id]
        _status, _desc, groups = health.deployment_outcome(dep, allocs, now)
        revert_to = None
        if unhealthy:
            desc = DESC_UNHEALTHY
            if _auto_revert(dep, [marked[aid]["TaskGroup"] for aid in unhealthy]):
                revert_to, desc = _rollback_target(txn, dep, desc, say_none=False)
            _set_status(txn, dep, DEPLOYMENT_FAILED, desc, now, groups)
        else:
            txn.put("deployment", dep_id, dict(dep, TaskGroups=groups, ModifyIndex=txn.index, ModifyTime=now))
        ev = _eval(txn, dep) if revert_to is None else None
    return _finish(state, dep, txn.index, ev["ID"] if ev else "", revert_to)

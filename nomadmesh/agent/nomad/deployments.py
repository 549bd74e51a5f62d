"""The deployment watcher: marks allocation health, finishes deployments, auto-promotes canaries,
auto-reverts.

Called periodically by the scheduler. Health verdicts come from nomad.health (pure); this
module reads check statuses from state and writes the outcome. Writes happen only on change, so an
idle agent does not bump the index (and wake every blocking query) on each tick.
"""
from __future__ import annotations

import logging
from typing import Any

from nomadmesh.agent.nomad import canaries, deployment_actions, health, jobs
from nomadmesh.agent.nomad.services import registrations
from nomadmesh.agent.nomad.structs import (
    DEPLOYMENT_FAILED,
    DEPLOYMENT_RUNNING,
    DEPLOYMENT_SUCCESSFUL,
    TRIGGER_DEPLOYMENT,
    evaluation,
    job_key,
    namespace_of,
    now_ns,
    owner_key,
)
from nomadmesh.agent.runtime.events import rfc3339
from nomadmesh.agent.state import State, Txn

log = logging.getLogger("nomadmesh.agent.deployments")


def _check_statuses(state: State, alloc: dict[str, Any]) -> list[str]:
    try:
        ids = {r["ID"] for r in registrations(alloc)}
    except ValueError:
        return ["critical"]
    return [c.get("Status", "critical") for c in state.values("check") if c.get("ServiceID") in ids]


def _expected_checks(alloc: dict[str, Any]) -> int:
    try:
        return sum(len(r["Checks"]) for r in registrations(alloc))
    except ValueError:
        return 1


def _update_strategy(alloc: dict[str, Any]) -> dict[str, Any]:
    tg = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
    return tg.get("Update") or {}


def tick(state: State) -> list[str]:
    """One pass; returns the state keys of jobs that need a new evaluation (progress on a rolling update)."""
    follow_up: list[str] = []
    now = now_ns()
    for dep in state.values("deployment"):
        if dep["Status"] != DEPLOYMENT_RUNNING:
            continue
        allocs = [a for a in state.values("alloc") if a.get("DeploymentID") == dep["ID"]]
        became_healthy = False
        for a in allocs:
            if a["DesiredStatus"] != "run" or (a.get("DeploymentStatus") or {}).get("Healthy") is not None:
                continue
            update = _update_strategy(a)
            if update.get("HealthCheck") == "manual":
                continue
            statuses = _check_statuses(state, a)
            if update.get("HealthCheck", "checks") == "checks" and len(statuses) < _expected_checks(a):
                statuses = [*statuses, "critical"]  # registered checks not in the catalog yet
            verdict = health.assess(a, update, statuses, int(a.get("_Joined") or a["CreateTime"]),
                                    a.get("_HealthySince"), now)
            if verdict.verdict == health.PENDING and verdict.healthy_since == a.get("_HealthySince"):
                continue
            with state.write() as txn:
                cur = txn.get("alloc", a["ID"])
                if cur is None:
                    continue
                doc = dict(cur.value, _HealthySince=verdict.healthy_since)
                if verdict.verdict != health.PENDING:
                    doc["DeploymentStatus"] = {"Healthy": verdict.verdict == health.HEALTHY, "Timestamp": rfc3339(now),
                                               "Canary": canaries.is_canary(cur.value), "ModifyIndex": txn.index}
                    doc["ModifyIndex"] = txn.index
                    became_healthy |= verdict.verdict == health.HEALTHY
                txn.put("alloc", a["ID"], doc)
        allocs = [a for a in state.values("alloc") if a.get("DeploymentID") == dep["ID"]]
        status, desc, groups = health.deployment_outcome(dep, allocs, now)
        if became_healthy:
            for g in groups.values():  # progress made: push the progress deadline out (Nomad does)
                g["RequireProgressBy"] = now + int(g.get("ProgressDeadline") or 0)
        if status == dep["Status"] and groups == dep["TaskGroups"]:
            continue
        revert_to = None
        if status == DEPLOYMENT_FAILED and any(g.get("AutoRevert") for g in groups.values()):
            revert_to = _latest_stable(state, namespace_of(dep), dep["JobID"], dep["JobVersion"])
            desc += (f" - rolling back to job version {revert_to}" if revert_to is not None
                     else " - no stable job version to auto revert to")
        with state.write() as txn:
            cur = txn.get("deployment", dep["ID"])
            if cur is None or cur.value["Status"] != DEPLOYMENT_RUNNING:
                continue
            txn.put("deployment", dep["ID"], dict(cur.value, Status=status, StatusDescription=desc,
                                                  TaskGroups=groups, ModifyIndex=txn.index, ModifyTime=now))
            if status == DEPLOYMENT_SUCCESSFUL:
                _mark_stable(txn, namespace_of(dep), dep["JobID"], dep["JobVersion"])
        if status != DEPLOYMENT_RUNNING:
            log.info("deployment %s of %s v%d: %s (%s)", dep["ID"][:8], dep["JobID"], dep["JobVersion"], status, desc)
        if revert_to is not None:
            try:
                jobs.revert(state, dep["JobID"], revert_to, TRIGGER_DEPLOYMENT, namespace=namespace_of(dep))
            except jobs.RevertRefused as e:  # purged meanwhile: nothing to roll back
                log.info("deployment %s of %s: auto revert not done: %s", dep["ID"][:8], dep["JobID"], e)
        elif became_healthy and status == DEPLOYMENT_RUNNING and deployment_actions.auto_promote(state, dep["ID"]):
            log.info("deployment %s of %s v%d: canaries auto-promoted", dep["ID"][:8], dep["JobID"], dep["JobVersion"])
        elif (became_healthy and status == DEPLOYMENT_RUNNING) or status == DEPLOYMENT_FAILED:
            # A failed deployment is evaluated again too (Nomad's watcher does): its failed
            # allocations are no longer held back and their reschedule policy applies.
            follow_up.append(owner_key(dep))
    return follow_up


def _latest_stable(state: State, namespace: str, job_id: str, below: int) -> int | None:
    stable = [r.value["Version"] for r in jobs.versions(state, namespace, job_id)
              if r.value.get("Stable") and r.value["Version"] < below]
    return max(stable) if stable else None


def _mark_stable(txn: Txn, namespace: str, job_id: str, version: int) -> None:
    key = jobs.version_key(namespace, job_id, version)
    rec = txn.get("job_version", key)
    if rec is not None:
        txn.put("job_version", key, dict(rec.value, Stable=True))
    job = txn.get("job", job_key(namespace, job_id))
    if job is not None and job.value["Version"] == version:
        txn.put("job", job.key, dict(job.value, Stable=True))


def follow_up_eval(state: State, key: str) -> None:
    """An evaluation of the job with state key `key` (what tick returns)."""
    with state.write() as txn:
        job = txn.get("job", key)
        if job is None:
            return
        ev = evaluation(job.value, TRIGGER_DEPLOYMENT, txn.index)
        txn.put("eval", ev["ID"], ev)

"""Nomad's forced garbage collection (PUT /v1/system/gc): the core scheduler's job, evaluation and
deployment GC with every threshold at zero, in one transaction.

Facts from nomad/core_sched.go:
  * an allocation is collectable once terminal and not running on the client; a failed one of a
    live job only if its group's reschedule policy is done with it (no attempts, or replaced);
  * an evaluation is collectable once terminal with all of its allocations collectable (a batch
    job's only once the job is dead and stopped, or gone); otherwise its collectable allocations go;
  * a job is collectable once dead and stopped (or a dead batch job) with every evaluation
    collectable and no tagged version; it leaves with its evaluations and their allocations;
  * a deployment is collectable once no longer active with every allocation of it terminal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nomadmesh.agent.nomad.jobs import delete_job, versions
from nomadmesh.agent.nomad.structs import (
    DEPLOYMENT_RUNNING,
    TERMINAL_CLIENT,
    is_terminal,
    key_of_job,
    namespace_of,
    owner_key,
)
from nomadmesh.agent.state import State, Txn

TERMINAL_EVAL = ("complete", "failed", "canceled")


@dataclass
class Collected:
    jobs: list[str] = field(default_factory=list)  # state keys, "<namespace>/<ID>"
    evals: list[str] = field(default_factory=list)
    allocs: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)


def alloc_collectable(a: dict[str, Any], job: dict[str, Any] | None) -> bool:
    """allocGCEligible with the cutoff at now; and (stricter than Nomad, whose client keeps its own
    copy) only once the client has finished with it, so no runner of this agent still writes it."""
    if not is_terminal(a) or a["ClientStatus"] not in TERMINAL_CLIENT:
        return False
    if job is None or job.get("Stop") or job.get("Status") == "dead":
        return True
    if a["DesiredStatus"] == "stop" or a["ClientStatus"] != "failed":
        return True
    tg = next((g for g in job.get("TaskGroups") or [] if g["Name"] == a["TaskGroup"]), None)
    policy = (tg or {}).get("ReschedulePolicy")
    if policy is None or (not policy.get("Unlimited") and not policy.get("Attempts")):
        return True
    return bool(a.get("NextAllocation"))  # else it may still be rescheduled


def _eval_collectable(ev: dict[str, Any], job: dict[str, Any] | None, allocs: list[dict[str, Any]],
                      allow_batch: bool) -> tuple[bool, list[str]]:
    """gcEval: whether the evaluation goes, and which of its allocations do."""
    if ev["Status"] not in TERMINAL_EVAL:
        return False, []
    if ev.get("Type") == "batch":
        dead = job is not None and job.get("Status") == "dead"
        if not (job is None or (dead and (job.get("Stop") or allow_batch))):
            return False, []  # Nomad keeps a live batch job's results (but its older versions')
    ids = [a["ID"] for a in allocs if alloc_collectable(a, job)]
    return len(ids) == len(allocs), ids


def _job_collectable(job: dict[str, Any]) -> bool:
    """JobsByGC: dead, and stopped or a batch job."""
    return job.get("Status") == "dead" and (bool(job.get("Stop")) or job.get("Type") in ("batch", "sysbatch"))


def collect(txn: Txn) -> Collected:
    out = Collected()
    jobs = {r.key: r.value for r in txn.records("job")}
    evals = [r.value for r in txn.records("eval")]
    allocs = [r.value for r in txn.records("alloc")]
    by_eval: dict[str, list[dict[str, Any]]] = {}
    for a in allocs:
        by_eval.setdefault(a.get("EvalID", ""), []).append(a)
    gone_evals: set[str] = set()
    gone_allocs: set[str] = set()

    for job in jobs.values():  # jobGC
        if not _job_collectable(job):
            continue
        own = [e for e in evals if owner_key(e) == key_of_job(job)]
        decisions = [_eval_collectable(e, job, by_eval.get(e["ID"], []), True) for e in own]
        if not all(ok for ok, _ in decisions):
            continue
        tagged = any(r.value.get("VersionTag") for r in versions(txn, namespace_of(job), job["ID"]))
        if tagged:
            continue
        out.jobs.append(key_of_job(job))
        gone_evals |= {e["ID"] for e in own}
        gone_allocs |= {aid for _, ids in decisions for aid in ids}

    for ev in evals:  # evalGC
        if ev["ID"] in gone_evals:
            continue
        ok, ids = _eval_collectable(ev, jobs.get(owner_key(ev)) if owner_key(ev) not in out.jobs else None,
                                    by_eval.get(ev["ID"], []), False)
        if ok:
            gone_evals.add(ev["ID"])
        gone_allocs |= set(ids)

    live_allocs = [a for a in allocs if a["ID"] not in gone_allocs]
    for rec in txn.records("deployment"):  # deploymentGC
        dep = rec.value
        if dep["Status"] == DEPLOYMENT_RUNNING or dep["Status"] in ("paused", "pending", "blocked", "unblocking"):
            continue
        if all(is_terminal(a) for a in live_allocs if a.get("DeploymentID") == dep["ID"]):
            out.deployments.append(dep["ID"])

    out.evals = sorted(gone_evals)
    out.allocs = sorted(gone_allocs)
    return out


def garbage_collect(state: State) -> Collected:
    """Collect and delete in one transaction (what is collected cannot change meanwhile)."""
    with state.write() as txn:
        txn.event_type = "JobBatchDeregistered"  # the core scheduler's jobReap; only jobs' deletions are events
        out = collect(txn)
        for key in out.jobs:
            ns, job_id = key.split("/", 1)
            delete_job(txn, ns, job_id)
        for eval_id in out.evals:
            txn.delete("eval", eval_id)
        for alloc_id in out.allocs:
            txn.delete("alloc", alloc_id)
        for dep_id in out.deployments:
            txn.delete("deployment", dep_id)
    return out

"""Job actions besides register/stop/revert: mark a version stable, force an evaluation — as Nomad's
Job.Stable and Job.Evaluate RPCs do, each in one state transaction.

Facts from Nomad's nomad/job_endpoint.go and state_store.go (updateJobStabilityImpl): Stable marks
the stored version and, when it is the current one, the job; Evaluate makes a "job-register"
evaluation and, with ForceReschedule, sets DesiredTransition.ForceReschedule on every failed
allocation not yet replaced whose group has a reschedule policy.
"""
from __future__ import annotations

import json
from typing import Any

from nomadmesh.agent.nomad.jobs import version_key
from nomadmesh.agent.nomad.structs import TRIGGER_REGISTER, evaluation, job_key, namespace_of
from nomadmesh.agent.state import State


class ActionRefused(Exception):
    """Nomad answers these with a 500 carrying this text."""


def _quote(text: str) -> str:
    return json.dumps(text)  # Go's %q for the printable IDs jobs have


def set_stable(state: State, job_id: str, version: int, stable: bool, namespace: str = "default") -> int:
    """Mark `version` of `job_id` (un)stable; returns the write index."""
    with state.write() as txn:
        rec = txn.get("job_version", version_key(namespace, job_id, version))
        if rec is None or rec.value.get("ID") != job_id:
            raise ActionRefused(f"job {_quote(job_id)} in namespace {_quote(namespace)} "
                                f"at version {version} not found")
        if bool(rec.value.get("Stable")) != stable:
            txn.put("job_version", rec.key, dict(rec.value, Stable=stable, ModifyIndex=txn.index))
            cur = txn.get("job", job_key(namespace, job_id))
            if cur is not None and cur.value["Version"] == version:
                txn.put("job", cur.key, dict(cur.value, Stable=stable, ModifyIndex=txn.index))
        return txn.index


def _reschedule_enabled(job: dict[str, Any], group: str) -> bool:
    """Nomad's ReschedulePolicy.Enabled: some attempts, or unlimited."""
    tg = next((g for g in job.get("TaskGroups") or [] if g["Name"] == group), None)
    policy = (tg or {}).get("ReschedulePolicy") or {}
    return bool(policy.get("Attempts")) or bool(policy.get("Unlimited"))


def evaluate(state: State, namespace: str, job_id: str, force_reschedule: bool) -> dict[str, Any]:
    """A new evaluation of the job as it stands (`nomad job eval`); the register-shaped reply."""
    with state.write() as txn:
        rec = txn.get("job", job_key(namespace, job_id))
        if rec is None:
            raise ActionRefused("job not found")
        job = rec.value
        if job.get("Periodic"):
            raise ActionRefused("can't evaluate periodic job")
        if job.get("ParameterizedJob"):
            raise ActionRefused("can't evaluate parameterized job")
        if force_reschedule:
            for r in txn.records("alloc"):
                a = r.value
                if a["JobID"] != job_id or namespace_of(a) != namespace or a.get("NextAllocation") \
                        or a["ClientStatus"] != "failed" or not _reschedule_enabled(job, a["TaskGroup"]):
                    continue
                transition = dict(a.get("DesiredTransition") or {})
                if transition.get("ForceReschedule"):
                    continue
                transition["ForceReschedule"] = True
                txn.put("alloc", r.key, dict(a, DesiredTransition=transition, ModifyIndex=txn.index))
        ev = evaluation(job, TRIGGER_REGISTER, txn.index, JobModifyIndex=job["ModifyIndex"])
        txn.put("eval", ev["ID"], ev)
    return {"EvalID": ev["ID"], "EvalCreateIndex": txn.index, "JobModifyIndex": job["ModifyIndex"],
            "Warnings": "", "Index": txn.index, "LastContact": 0, "KnownLeader": True}

"""Job writes: register (with EnforceIndex), stop, purge and revert, each in one state transaction
together with the evaluation it triggers — as Nomad's Job.Register/Deregister RPCs do.

The HTTP views validate and canonicalize the job first; this module only versions and stores it.
"""
from __future__ import annotations

import copy
from typing import Any

from nomadmesh.agent.consul import config_store, ingress_gateway as ingress
from nomadmesh.agent.consul.config_entries import protocol_of
from nomadmesh.agent.nomad import namespaces
from nomadmesh.agent.nomad.structs import (
    TRIGGER_DEREGISTER,
    TRIGGER_REGISTER,
    evaluation,
    job_key,
    key_of_job,
    namespace_of,
    now_ns,
)
from nomadmesh.agent.state import Record, State, Txn
from nomadmesh.gotext import quote as go_quote

SUBMISSION_KIND = "job_submission"
SUBMISSION_FIELDS = ("Source", "Format", "VariableFlags", "Variables")  # api.JobSubmission
TRACKED_VERSIONS = 6  # Nomad's JobTrackedVersions
# Fields that describe a job's life, not its spec (Nomad's Job.SpecChanged ignores them).
NON_SPEC_FIELDS = ("Status", "StatusDescription", "Stable", "Version", "CreateIndex", "ModifyIndex",
                   "JobModifyIndex", "SubmitTime", "VersionTag")


class RegisterRefused(Exception):
    """A register Nomad refuses with a 500 carrying this text."""


class EnforceIndexError(RegisterRefused):
    """Nomad answers these with a 500 whose text starts "Enforcing job modify index"."""


class ConfigEntryRefused(RegisterRefused):
    """Consul refused a gateway's config entry Nomad writes on register, so the register fails."""


class JobNotFound(Exception):
    pass


def is_parameterized(job: dict[str, Any]) -> bool:
    """Nomad's Job.IsParameterized: a parameterized parent, never placed itself (its dispatched
    children carry the same block with Dispatched set)."""
    return job.get("ParameterizedJob") is not None and not job.get("Dispatched")


def _check_update(existing: dict[str, Any] | None, job: dict[str, Any]) -> None:
    """Nomad's validateJobUpdate: a job cannot become or stop being parameterized, nor dispatched."""
    if existing is None:
        return
    if is_parameterized(existing) and not is_parameterized(job):
        raise RegisterRefused("cannot update parameterized job to being non-parameterized")
    if is_parameterized(job) and not is_parameterized(existing):
        raise RegisterRefused("cannot update non-parameterized job to being parameterized")
    if bool(existing.get("Dispatched")) != bool(job.get("Dispatched")):
        raise RegisterRefused("field 'Dispatched' is read-only")


def version_key(namespace: str, job_id: str, version: int) -> str:
    return f"{job_key(namespace, job_id)}/{version:010d}"


def get(state: State | Txn, namespace: str, job_id: str) -> dict[str, Any] | None:
    """Job `job_id` of `namespace`, or None."""
    rec = state.get("job", job_key(namespace, job_id))
    return rec.value if rec is not None else None


def versions(state: State | Txn, namespace: str, job_id: str) -> list[Record]:
    """The stored versions of a job, oldest first. Job IDs may hold a '/', so the key prefix
    `<namespace>/<job_id>/` also lists job `<job_id>/x`'s versions: those are left out."""
    return [r for r in state.records("job_version", job_key(namespace, job_id) + "/")
            if r.value.get("ID") == job_id]


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    strip = lambda j: {k: v for k, v in j.items() if k not in NON_SPEC_FIELDS}  # noqa: E731
    return strip(old) != strip(new)


def _enforce(existing: dict[str, Any] | None, index: int) -> None:
    if index == 0 and existing is not None:
        raise EnforceIndexError(f"Enforcing job modify index {index}: job already exists")
    if index != 0 and existing is None:
        raise EnforceIndexError(f"Enforcing job modify index {index}: job does not exist")
    if index != 0 and existing is not None and existing["JobModifyIndex"] != index:
        raise EnforceIndexError(
            f"Enforcing job modify index {index}: job exists with conflicting job modify index: "
            f"{existing['JobModifyIndex']}"
        )


def submission_key(namespace: str, job_id: str, version: int) -> str:
    return version_key(namespace, job_id, version)


def _store(txn: Txn, job: dict[str, Any], existing: dict[str, Any] | None,
           submission: dict[str, Any] | None = None) -> dict[str, Any]:
    """Version and write `job` (already canonical) and, when given, the source it was submitted as
    (Nomad 1.6+ keeps one JobSubmission per job version); returns the stored job."""
    job = copy.deepcopy(job)
    if existing is not None and not spec_changed(existing, job):
        for k in ("Version", "JobModifyIndex", "SubmitTime", "Stable", "Status", "StatusDescription"):
            job[k] = existing.get(k)
    else:
        job["Version"] = existing["Version"] + 1 if existing else 0
        job["JobModifyIndex"] = txn.index
        job["SubmitTime"] = now_ns()
        job["Stable"] = False
        job["Status"] = "pending" if not job.get("Stop") else (existing or {}).get("Status", "dead")
        job["StatusDescription"] = ""
    job["CreateIndex"] = existing["CreateIndex"] if existing else txn.index
    job["ModifyIndex"] = txn.index
    ns = namespace_of(job)
    txn.put("job", key_of_job(job), job)
    txn.put("job_version", version_key(ns, job["ID"], job["Version"]), job)
    if submission is not None:
        txn.put(SUBMISSION_KIND, submission_key(ns, job["ID"], job["Version"]), {
            **submission, "Namespace": ns, "JobID": job["ID"],
            "Version": job["Version"], "JobModifyIndex": job["JobModifyIndex"]})
    kept = versions(txn, ns, job["ID"])
    for old in kept[: max(0, len(kept) - TRACKED_VERSIONS)]:
        txn.delete("job_version", old.key)
        txn.delete(SUBMISSION_KIND, old.key)  # a version's source goes with it
    return job


def submission(state: State, namespace: str, job_id: str, version: int) -> dict[str, Any] | None:
    """The source job `job_id` was submitted as at `version`, or None (Nomad: "job source not found")."""
    rec = state.get(SUBMISSION_KIND, submission_key(namespace, job_id, version))
    return rec.value if rec is not None and rec.value.get("JobID") == job_id else None


def _check_ingress_entry(txn: Txn, entry: dict[str, Any]) -> None:
    lookup = config_store.lookup_in(txn)
    problem = ingress.protocol_conflict(
        [entry], lambda name: protocol_of(name, lookup),
        lambda name: any(lookup(kind, name) for kind in ("service-router", "service-splitter")))
    if problem:
        raise ConfigEntryRefused(f"Unexpected response code: 500 ({problem})")


def _check_namespace(txn: Txn, job: dict[str, Any]) -> None:
    """Nomad's namespace check on register."""
    ns = namespace_of(job)
    if not namespaces.exists(txn, ns):
        raise RegisterRefused(f"job {go_quote(job['ID'])} is in nonexistent namespace {go_quote(ns)}")


def register(state: State, job: dict[str, Any], enforce_index: bool = False,
             job_modify_index: int = 0, submission: dict[str, Any] | None = None) -> dict[str, Any]:
    with state.write() as txn:
        existing = get(txn, namespace_of(job), job["ID"])
        _check_namespace(txn, job)
        if enforce_index:
            _enforce(existing, job_modify_index)
        _check_update(existing, job)
        stored = _store(txn, job, existing, submission)
        for entry in ingress.entries_from_job(stored):
            # Nomad writes each gateway's entry to Consul on every register (and leaves it on stop);
            # when Consul refuses it, the register fails and nothing is stored (the txn rolls back).
            _check_ingress_entry(txn, entry)
            txn.put(config_store.KIND, config_store.key(entry["Kind"], entry["Name"]), entry)
        eval_id = _evaluate(txn, stored, TRIGGER_REGISTER)
    return {"EvalID": eval_id, "EvalCreateIndex": txn.index if eval_id else 0,
            "JobModifyIndex": stored["JobModifyIndex"], "Warnings": "", "Index": txn.index, "LastContact": 0,
            "KnownLeader": True}


def _evaluate(txn: Txn, job: dict[str, Any], triggered_by: str, **extra: Any) -> str:
    """The evaluation a write of `job` triggers; none for a parameterized parent (Nomad's Register
    and Deregister create none), "" then."""
    if is_parameterized(job):
        return ""
    ev = evaluation(job, triggered_by, txn.index, **extra)
    txn.put("eval", ev["ID"], ev)
    return str(ev["ID"])


def delete_job(txn: Txn, namespace: str, job_id: str) -> None:
    """The job, its versions and their submissions leave the state (a purge, or the GC)."""
    txn.delete("job", job_key(namespace, job_id))
    for r in versions(txn, namespace, job_id):
        txn.delete("job_version", r.key)
    for r in txn.records(SUBMISSION_KIND, job_key(namespace, job_id) + "/"):
        if r.value.get("JobID") == job_id:  # not job "<job_id>/x"'s
            txn.delete(SUBMISSION_KIND, r.key)


def deregister(state: State, namespace: str, job_id: str, purge: bool) -> dict[str, Any]:
    with state.write() as txn:
        job = get(txn, namespace, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if purge:
            delete_job(txn, namespace, job_id)
            modify_index = job["JobModifyIndex"]
        else:
            stopped = dict(job, Stop=True)
            modify_index = _store(txn, stopped, job)["JobModifyIndex"]
        eval_id = _evaluate(txn, job, TRIGGER_DEREGISTER, JobModifyIndex=modify_index)
    return {"EvalID": eval_id, "EvalCreateIndex": txn.index if eval_id else 0, "JobModifyIndex": modify_index,
            "VolumeEvalID": "", "VolumeEvalIndex": 0, "Index": txn.index, "LastContact": 0,
            "KnownLeader": True}


class RevertRefused(Exception):
    """Job.Revert's refusals; Nomad answers them with a 500 carrying this text."""



def revert(state: State, job_id: str, to_version: int, triggered_by: str = TRIGGER_REGISTER,
           enforce_prior_version: int | None = None, namespace: str = "default") -> dict[str, Any]:
    """Re-register version `to_version` as the newest version (`nomad job revert`, auto_revert), with
    Nomad's checks in Nomad's order; the reverted version's submitted source comes back with it.
    Returns the register reply (EvalID, JobModifyIndex, Index...); raises RevertRefused."""
    with state.write() as txn:
        cur = txn.get("job", job_key(namespace, job_id))
        if cur is None:
            raise RevertRefused(f"job {go_quote(job_id)} not found")
        if to_version == cur.value["Version"]:
            raise RevertRefused("can't revert to current version")
        old = txn.get("job_version", version_key(namespace, job_id, to_version))
        if old is None or old.value.get("ID") != job_id:
            raise RevertRefused(f"job {go_quote(job_id)} in namespace {go_quote(namespace)} "
                                f"at version {to_version} not found")
        if enforce_prior_version is not None and cur.value["Version"] != enforce_prior_version:
            raise RevertRefused(f"Current job has version {cur.value['Version']}; "
                                f"enforcing version {enforce_prior_version}")
        spec = {k: v for k, v in old.value.items() if k not in NON_SPEC_FIELDS}
        if not spec_changed(cur.value, spec):
            # Nomad's register writes nothing for an unchanged spec, only the evaluation.
            eval_id = _evaluate(txn, cur.value, triggered_by)
            return {"EvalID": eval_id, "EvalCreateIndex": txn.index if eval_id else 0,
                    "JobModifyIndex": cur.value["ModifyIndex"],
                    "Warnings": "", "Index": txn.index, "LastContact": 0, "KnownLeader": True}
        # the old version's source comes back too
        source = txn.get(SUBMISSION_KIND, submission_key(namespace, job_id, to_version))
        kept = {k: source.value[k] for k in SUBMISSION_FIELDS} if source is not None else None
        stored = _store(txn, spec, cur.value, kept)
        eval_id = _evaluate(txn, stored, triggered_by)
    return {"EvalID": eval_id, "EvalCreateIndex": txn.index if eval_id else 0,
            "JobModifyIndex": stored["JobModifyIndex"],
            "Warnings": "", "Index": txn.index, "LastContact": 0, "KnownLeader": True}


def job_stub(job: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "ID": job["ID"], "ParentID": job.get("ParentID", ""), "Name": job.get("Name", job["ID"]),
        "Namespace": job.get("Namespace", "default"), "Datacenters": job.get("Datacenters"),
        "NodePool": job.get("NodePool", "default"), "Multiregion": None, "Type": job.get("Type", "service"),
        "Priority": job.get("Priority", 50), "Periodic": False, "ParameterizedJob": is_parameterized(job),
        "Stop": bool(job.get("Stop")), "Status": job.get("Status"),
        "StatusDescription": job.get("StatusDescription", ""),
        "JobSummary": summary, "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"],
        "JobModifyIndex": job["JobModifyIndex"], "SubmitTime": job.get("SubmitTime", 0), "Meta": job.get("Meta"),
    }


_SUMMARY_KEYS = ("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown")


def children_of(state: State, namespace: str, job_id: str) -> list[dict[str, Any]]:
    """The jobs dispatched from parameterized job `job_id` (IDs `<job_id>/dispatch-...`, in its namespace)."""
    return [j for j in state.values("job", job_key(namespace, job_id) + "/") if j.get("ParentID") == job_id]


def job_summary(job: dict[str, Any], allocs: list[dict[str, Any]],
                children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Nomad's JobSummary; `children` (a parent's dispatched jobs) are counted by their status."""
    groups: dict[str, dict[str, int]] = {}
    for tg in job.get("TaskGroups") or []:
        groups[tg["Name"]] = dict.fromkeys(_SUMMARY_KEYS, 0)
    for a in allocs:
        g = groups.setdefault(a["TaskGroup"], dict.fromkeys(_SUMMARY_KEYS, 0))
        key = {"pending": "Starting", "running": "Running", "complete": "Complete", "failed": "Failed",
               "lost": "Lost"}.get(a["ClientStatus"], "Unknown")
        g[key] += 1
    return {"JobID": job["ID"], "Namespace": job.get("Namespace", "default"), "Summary": groups,
            "Children": {status.title(): sum(1 for c in children or [] if c.get("Status") == status)
                         for status in ("pending", "running", "dead")}, "CreateIndex": job["CreateIndex"],
            "ModifyIndex": job["ModifyIndex"]}

"""Constructors for Nomad's Evaluation, Allocation and Deployment documents (Go field names).

Pure: ids and clocks are passed in or taken from small helpers so callers can pin them.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from nomadmesh.agent.runtime.events import rfc3339

# Nomad's evaluation and deployment vocabulary, in one place.
TRIGGER_REGISTER = "job-register"
TRIGGER_DEREGISTER = "job-deregister"
TRIGGER_DEPLOYMENT = "deployment-watcher"
TRIGGER_QUEUED = "queued-allocs"
TRIGGER_ALLOC_FAILURE = "alloc-failure"
TRIGGER_RECONCILE = "node-update"
TRIGGER_ALLOC_STOP = "alloc-stop"
DESC_MIGRATING = "alloc is being migrated"
DESC_LOST = "alloc is lost since its node is down"

DEPLOYMENT_RUNNING = "running"
DEPLOYMENT_SUCCESSFUL = "successful"
DEPLOYMENT_FAILED = "failed"
DEPLOYMENT_CANCELLED = "cancelled"
DEPLOYMENT_PAUSED = "paused"
DESC_RUNNING = "Deployment is running"
DESC_SUCCESSFUL = "Deployment completed successfully"
DESC_UNHEALTHY = "Failed due to unhealthy allocations"
DESC_PROGRESS = "Failed due to progress deadline"
DESC_STOPPED = "Cancelled because job is stopped"
DESC_NEWER = "Cancelled due to newer version of job"
DESC_PAUSED = "Deployment is paused"
DESC_FAILED_BY_USER = "Deployment marked as failed"

TERMINAL_CLIENT = ("complete", "failed", "lost")


def now_ns() -> int:
    return time.time_ns()


def new_id() -> str:
    return str(uuid.uuid4())


# Nomad keys jobs by (namespace, ID): the same ID may live in several namespaces. The state keys a
# job "<namespace>/<ID>"; a namespace name holds no "/" (^[a-zA-Z0-9-]{1,128}$), so the first "/"
# ends it even when the job ID holds one.
def namespace_of(doc: dict[str, Any]) -> str:
    return doc.get("Namespace") or "default"


def job_key(namespace: str, job_id: str) -> str:
    return f"{namespace}/{job_id}"


def key_of_job(job: dict[str, Any]) -> str:
    """The state key of a job document."""
    return job_key(namespace_of(job), job["ID"])


def owner_key(doc: dict[str, Any]) -> str:
    """The state key of the job an evaluation, allocation, deployment or submission belongs to."""
    return job_key(namespace_of(doc), doc["JobID"])


def evaluation(job: dict[str, Any], triggered_by: str, index: int, **extra: Any) -> dict[str, Any]:
    t = now_ns()
    ev = {
        "ID": new_id(),
        "Namespace": job.get("Namespace", "default"),
        "Priority": job.get("Priority", 50),
        "Type": job.get("Type", "service"),
        "TriggeredBy": triggered_by,
        "JobID": job["ID"],
        "JobModifyIndex": job.get("JobModifyIndex", 0),
        "NodeID": "",
        "DeploymentID": "",
        "Status": "pending",
        "StatusDescription": "",
        "Wait": 0,
        "WaitUntil": "0001-01-01T00:00:00Z",
        "NextEval": "",
        "PreviousEval": "",
        "BlockedEval": "",
        "FailedTGAllocs": None,
        "QueuedAllocations": None,
        "CreateIndex": index,
        "ModifyIndex": index,
        "CreateTime": t,
        "ModifyTime": t,
    }
    ev.update(extra)
    return ev


def deployment(job: dict[str, Any], index: int, desired: dict[str, int]) -> dict[str, Any]:
    t = now_ns()
    groups = {}
    for tg in job["TaskGroups"]:
        if tg["Name"] not in desired:
            continue
        upd = tg.get("Update") or {}
        groups[tg["Name"]] = {
            "AutoRevert": bool(upd.get("AutoRevert")),
            "AutoPromote": bool(upd.get("AutoPromote")),
            "ProgressDeadline": upd.get("ProgressDeadline", 0),
            "RequireProgressBy": t + int(upd.get("ProgressDeadline", 0) or 0),
            "Promoted": False,
            "PlacedCanaries": None,
            "DesiredCanaries": 0,
            "DesiredTotal": desired[tg["Name"]],
            "PlacedAllocs": 0,
            "HealthyAllocs": 0,
            "UnhealthyAllocs": 0,
        }
    return {
        "ID": new_id(),
        "Namespace": job.get("Namespace", "default"),
        "JobID": job["ID"],
        "JobVersion": job.get("Version", 0),
        "JobModifyIndex": job.get("JobModifyIndex", 0),
        "JobSpecModifyIndex": job.get("JobModifyIndex", 0),
        "JobCreateIndex": job.get("CreateIndex", 0),
        "IsMultiregion": False,
        "EvalPriority": job.get("Priority", 50),
        "TaskGroups": groups,
        "Status": DEPLOYMENT_RUNNING,
        "StatusDescription": DESC_RUNNING,
        "CreateIndex": index,
        "ModifyIndex": index,
        "CreateTime": t,
        "ModifyTime": t,
    }


def deployment_json(dep: dict[str, Any]) -> dict[str, Any]:
    """A deployment as Nomad's API writes it: RequireProgressBy (kept as ns here, for the watcher's
    arithmetic) is a Go time.Time, so `nomad deployment status` and Go clients can decode it."""
    groups = {name: dict(g, RequireProgressBy=rfc3339(int(g.get("RequireProgressBy") or 0)))
              for name, g in (dep.get("TaskGroups") or {}).items()}
    return dict(dep, TaskGroups=groups)


def allocation(
    job: dict[str, Any],
    group: str,
    index_in_group: int,
    eval_id: str,
    node: dict[str, Any],
    ports: list[dict[str, Any]],
    network_mode: str,
    deployment_id: str,
    create_index: int,
    previous: str = "",
) -> dict[str, Any]:
    t = now_ns()
    tg = next(g for g in job["TaskGroups"] if g["Name"] == group)
    tasks = {}
    for task in tg.get("Tasks") or []:
        res = task.get("Resources") or {}
        tasks[task["Name"]] = {
            "Cpu": {"CpuShares": res.get("CPU", 100), "ReservedCores": None},
            "Memory": {"MemoryMB": res.get("MemoryMB", 300), "MemoryMaxMB": res.get("MemoryMaxMB", 0)},
            "Networks": None,
            "Devices": None,
        }
    reserved = [p for p in ports if p.get("_static")]
    dynamic = [p for p in ports if not p.get("_static")]
    clean = [{k: v for k, v in p.items() if not k.startswith("_")} for p in ports]
    network = None
    if tg.get("Networks"):
        network = {
            "Mode": network_mode,
            "Device": "",
            "IP": "127.0.0.1",
            "ReservedPorts": [{k: v for k, v in p.items() if k in ("Label", "Value", "To", "HostNetwork")}
                              for p in reserved] or None,
            "DynamicPorts": [{k: v for k, v in p.items() if k in ("Label", "Value", "To", "HostNetwork")}
                             for p in dynamic] or None,
        }
    return {
        "ID": new_id(),
        "Namespace": job.get("Namespace", "default"),
        "EvalID": eval_id,
        "Name": f"{job['ID']}.{group}[{index_in_group}]",
        "NodeID": node["ID"],
        "NodeName": node["Name"],
        "JobID": job["ID"],
        "Job": job,
        "JobVersion": job.get("Version", 0),
        "TaskGroup": group,
        "AllocatedResources": {
            "Tasks": tasks,
            "TaskLifecycles": {t["Name"]: t.get("Lifecycle") for t in tg.get("Tasks") or []},
            "Shared": {
                "DiskMB": (tg.get("EphemeralDisk") or {}).get("SizeMB", 300),
                "Networks": [network] if network else None,
                "Ports": [{"Label": p["Label"], "Value": p["Value"], "To": p.get("To", 0),
                           "HostIP": "127.0.0.1"} for p in clean] or None,
            },
        },
        "DesiredStatus": "run",
        "DesiredDescription": "",
        "DesiredTransition": {},
        "ClientStatus": "pending",
        "ClientDescription": "",
        "TaskStates": {},
        "DeploymentID": deployment_id,
        "DeploymentStatus": None,
        "NetworkStatus": None,
        "PreviousAllocation": previous,
        "NextAllocation": "",
        "FollowupEvalID": "",
        "RescheduleTracker": None,
        "CreateIndex": create_index,
        "ModifyIndex": create_index,
        "AllocModifyIndex": create_index,
        "CreateTime": t,
        "ModifyTime": t,
    }


def alloc_index(alloc: dict[str, Any]) -> int:
    """The `[n]` in `<job>.<group>[n]`."""
    name = alloc["Name"]
    return int(name[name.rindex("[") + 1 : -1])


def alloc_stub(alloc: dict[str, Any]) -> dict[str, Any]:
    """AllocListStub: what list endpoints return (no Job)."""
    keys = ("ID", "EvalID", "Name", "Namespace", "NodeID", "NodeName", "JobID", "JobVersion",
            "TaskGroup", "DesiredStatus", "DesiredDescription", "ClientStatus", "ClientDescription",
            "TaskStates", "DeploymentStatus", "FollowupEvalID", "RescheduleTracker",
            "PreemptedAllocations", "PreemptedByAllocation", "CreateIndex", "ModifyIndex",
            "CreateTime", "ModifyTime", "NetworkStatus")
    stub = {k: alloc.get(k) for k in keys}
    stub["JobType"] = (alloc.get("Job") or {}).get("Type", "service")
    stub["AllocatedResources"] = alloc.get("AllocatedResources")
    return stub


def is_terminal(alloc: dict[str, Any]) -> bool:
    """Nomad's TerminalStatus: desired stop/evict, or the client says complete/failed/lost."""
    return alloc["DesiredStatus"] in ("stop", "evict") or alloc["ClientStatus"] in TERMINAL_CLIENT

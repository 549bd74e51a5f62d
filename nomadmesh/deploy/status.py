"""What runs: each managed job with its allocations, health, sidecar state and the address to call.

`job_status(job, allocs, deployment)` is pure; `collect_status(api)` reads the target.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nomadmesh.deploy.live import managed_jobs
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.verify import edges_from_jobs
from nomadmesh.deploy.watch import SIDECAR_PREFIX


@dataclass(frozen=True)
class AllocStatus:
    id: str
    status: str  # ClientStatus
    healthy: bool | None
    tasks: dict[str, str]  # task → state (running / pending / dead / failed)
    sidecar: str | None  # the connect-proxy task's state, None without a sidecar
    addresses: tuple[str, ...]  # host:port of published ports


@dataclass(frozen=True)
class JobStatus:
    job: str
    status: str
    version: int | None
    deployment: str | None  # latest deployment's status
    allocations: tuple[AllocStatus, ...]
    edges: tuple[tuple[str, str], ...] = ()  # (service, upstream) the live job declares
    stopped: bool = False  # stopped on purpose (destroy without --purge): not a health problem

    @property
    def problem(self) -> str | None:
        """Why this job is unhealthy, or None. Stopped on purpose is not a problem, and neither is a
        deployment still in progress (allocations pending): a failed deployment, an allocation that
        failed or was lost, or one its deployment reports unhealthy is; so is a running job with none."""
        if self.stopped:
            return None
        if self.deployment == "failed":
            return "its latest deployment failed"
        if not self.allocations:
            return "no allocation is running"
        bad = [a for a in self.allocations if a.status in ("failed", "lost") or a.healthy is False]
        if bad:
            return ", ".join(f"alloc {a.id[:8]} {a.status}{' (unhealthy)' if a.healthy is False else ''}"
                             for a in bad)
        return None

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for alloc in self.allocations for a in alloc.addresses)

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "status": self.status, "version": self.version, "deployment": self.deployment,
                "stopped": self.stopped, "problem": self.problem, "addresses": list(self.addresses),
                "allocations": [{"id": a.id, "status": a.status, "healthy": a.healthy, "tasks": a.tasks,
                                 "sidecar": a.sidecar, "addresses": list(a.addresses)} for a in self.allocations]}


def _task_state(ts: dict[str, Any]) -> str:
    return "failed" if ts.get("State") == "dead" and ts.get("Failed") else str(ts.get("State") or "pending")


def _is_check_port(label: str) -> bool:
    return label.startswith("svc_") and "_ck_" in label


def _addresses(alloc: dict[str, Any]) -> tuple[str, ...]:
    """Published host ports, leaving out the sidecar's own and the exposed-check listeners
    (`svc_<service>_ck_<hex>`, as Nomad names them): only Envoy and health checks use those."""
    ports = ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []
    out = []
    for port in ports:
        label = str(port.get("Label", ""))
        if port.get("Value") and not label.startswith(SIDECAR_PREFIX) and not _is_check_port(label):
            host = port.get("HostIP") or "127.0.0.1"
            out.append(f"{'127.0.0.1' if host == '0.0.0.0' else host}:{port['Value']}")
    return tuple(out)


def alloc_status(alloc: dict[str, Any]) -> AllocStatus:
    tasks = {name: _task_state(ts) for name, ts in sorted((alloc.get("TaskStates") or {}).items())}
    sidecar = next((s for t, s in tasks.items() if t.startswith(SIDECAR_PREFIX)), None)
    return AllocStatus(alloc["ID"], alloc.get("ClientStatus", ""), (alloc.get("DeploymentStatus") or {}).get("Healthy"),
                       tasks, sidecar, _addresses(alloc))


def job_status(job: dict[str, Any], allocs: list[dict[str, Any]], deployment: dict[str, Any] | None) -> JobStatus:
    """Pure: one job's status from its stub, its full allocations and its latest deployment."""
    live = [a for a in allocs if a.get("DesiredStatus") == "run"]
    return JobStatus(job["ID"], job.get("Status", ""), job.get("Version"),
                     deployment.get("Status") if deployment else None, tuple(alloc_status(a) for a in live),
                     tuple(edges_from_jobs([job])), bool(job.get("Stop")))


def collect_status(api: NomadAPI) -> list[JobStatus]:
    out = []
    for stub in managed_jobs(api):
        stubs = api.allocations(stub["ID"]).value
        # The stubs lack AllocatedResources (the published ports): read the running ones in full.
        allocs = [api.allocation(a["ID"]) if a.get("DesiredStatus") == "run" else a for a in stubs]
        full = api.job(stub["ID"]) or stub  # the stub may lack Version
        out.append(job_status(full, allocs, api.latest_deployment(stub["ID"]).value))
    return out

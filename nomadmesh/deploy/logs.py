"""Which allocation and task `nomadmesh logs SERVICE` reads."""
from __future__ import annotations

from typing import Any

from nomadmesh.deploy.errors import DeployError
from nomadmesh.deploy.nomad_api import NomadAPI


def choose(service: str, allocs: list[dict[str, Any]], task: str | None) -> tuple[str, str]:
    """Pure: the newest allocation (running ones first) and the task (default: the service's)."""
    if not allocs:
        raise DeployError(f"service {service!r} has no allocations on the target")
    newest = max(allocs, key=lambda a: (a.get("ClientStatus") == "running", a.get("CreateIndex", 0)))
    tasks = sorted((newest.get("TaskStates") or {}).keys())
    name = task or service
    if tasks and name not in tasks:
        raise DeployError(
            f"allocation {newest['ID'][:8]} of {service!r} has no task {name!r}; tasks: {', '.join(tasks)}")
    return newest["ID"], name


def pick_allocation(api: NomadAPI, service: str, task: str | None) -> tuple[str, str]:
    if api.job(service) is None:
        raise DeployError(f"no job {service!r} on the target")
    return choose(service, list(api.allocations(service).value), task)

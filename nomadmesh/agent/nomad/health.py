"""Deployment health, per the update block. Pure: callers pass the clock and check statuses.

An allocation is healthy once all its (non-prestart) tasks run and, with `health_check = "checks"`,
all its Consul checks pass, continuously for `min_healthy_time`. It is unhealthy when a task failed
or `healthy_deadline` passed first. A deployment succeeds when every group has `DesiredTotal`
(and at least `DesiredCanaries`) healthy allocations and its canaries are promoted; it fails on the
first unhealthy one or when `progress_deadline` passes without an allocation becoming healthy — a
group waiting for promotion fails only when its canaries are not all healthy by then (Nomad's
deployment watcher, shouldFail).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.nomad.structs import (
    DEPLOYMENT_FAILED,
    DEPLOYMENT_RUNNING,
    DEPLOYMENT_SUCCESSFUL,
    DESC_PROGRESS,
    DESC_SUCCESSFUL,
    DESC_UNHEALTHY,
)

PENDING, HEALTHY, UNHEALTHY = "pending", "healthy", "unhealthy"


@dataclass(frozen=True)
class Assessment:
    verdict: str  # pending | healthy | unhealthy
    healthy_since: int | None  # ns since when all looked fine (None: not fine now)


def _main_tasks(alloc: dict[str, Any]) -> list[dict[str, Any]]:
    tg = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
    out = []
    for t in tg.get("Tasks") or []:
        lc = t.get("Lifecycle") or {}
        if lc.get("Hook") in ("prestart", "poststop") and not lc.get("Sidecar"):
            continue  # one-shot hooks are expected to finish
        out.append(t)
    return out


def assess(alloc: dict[str, Any], update: dict[str, Any], check_statuses: list[str],
           joined_ns: int, previous_since: int | None, now: int) -> Assessment:
    states = alloc.get("TaskStates") or {}
    if alloc["ClientStatus"] == "failed" or any(s.get("Failed") for s in states.values()):
        return Assessment(UNHEALTHY, None)
    tasks = _main_tasks(alloc)
    running = tasks and all((states.get(t["Name"]) or {}).get("State") == "running" for t in tasks)
    checks_ok = update.get("HealthCheck", "checks") != "checks" or all(s == "passing" for s in check_statuses)
    deadline = joined_ns + int(update.get("HealthyDeadline") or 300_000_000_000)
    if not (running and checks_ok):
        return Assessment(UNHEALTHY if now > deadline else PENDING, None)
    # A restart resets the clock: health counts from the latest task start.
    started = max((_started_ns(states.get(t["Name"]) or {}) for t in tasks), default=0)
    since = max(previous_since or now, started)
    if now - since >= int(update.get("MinHealthyTime") or 0):
        return Assessment(HEALTHY, since)
    return Assessment(UNHEALTHY if now > deadline else PENDING, since)


def _started_ns(ts: dict[str, Any]) -> int:
    """When the task last started: its latest "Started" event (ns), else an integer StartedAt."""
    times = [int(e.get("Time") or 0) for e in ts.get("Events") or [] if e.get("Type") == "Started"]
    if times:
        return max(times)
    value = ts.get("StartedAt")
    return int(value) if isinstance(value, (int, float)) else 0


def deployment_outcome(dep: dict[str, Any], allocs: list[dict[str, Any]], now: int) -> tuple[str, str, dict[str, Any]]:
    """(Status, StatusDescription, TaskGroups) of a running deployment given its allocations."""
    groups = {name: dict(g) for name, g in dep["TaskGroups"].items()}
    for name, g in groups.items():
        mine = [a for a in allocs if a["TaskGroup"] == name and a.get("DeploymentID") == dep["ID"]]
        g["PlacedAllocs"] = len(mine)
        g["HealthyAllocs"] = sum(1 for a in mine if (a.get("DeploymentStatus") or {}).get("Healthy") is True)
        g["UnhealthyAllocs"] = sum(1 for a in mine if (a.get("DeploymentStatus") or {}).get("Healthy") is False)
    if any(g["UnhealthyAllocs"] for g in groups.values()):
        return DEPLOYMENT_FAILED, DESC_UNHEALTHY, groups
    if all(_done(g) for g in groups.values()):
        return DEPLOYMENT_SUCCESSFUL, DESC_SUCCESSFUL, groups
    for g in groups.values():
        awaiting_promotion = g.get("DesiredCanaries") and not g.get("Promoted")
        enough = g["HealthyAllocs"] >= (g["DesiredCanaries"] if awaiting_promotion else g["DesiredTotal"])
        if g.get("ProgressDeadline") and not enough and now > g["RequireProgressBy"]:
            return DEPLOYMENT_FAILED, DESC_PROGRESS, groups
    return DEPLOYMENT_RUNNING, dep["StatusDescription"], groups


def _done(group: dict[str, Any]) -> bool:
    """Nomad's isDeploymentComplete for a group: enough healthy allocations, canaries promoted."""
    canaries = int(group.get("DesiredCanaries") or 0)
    promoted = not canaries or bool(group.get("Promoted"))
    return promoted and group["HealthyAllocs"] >= max(group["DesiredTotal"], canaries)

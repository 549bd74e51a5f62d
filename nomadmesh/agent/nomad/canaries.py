"""Canary deployments, as Nomad's scheduler, deployment watcher and state store treat them. Pure.

Facts from Nomad (scheduler/reconciler/reconcile_cluster.go, allocs.go NextCanaries,
nomad/state/state_store.go UpdateDeploymentPromotion, nomad/deploymentwatcher autoPromoteDeployment,
structs/deployment.go):
  * a group with `update { canary = N }` whose job change is destructive gets N canaries of the new
    version beside the old allocations, which stay untouched until the deployment is promoted;
  * a canary takes the name index of an allocation it will replace first, then a free index, then
    indexes beyond the count (so that after promotion those are the ones stopped);
  * canaries of an older deployment, or of a failed one, that were never promoted are stopped;
  * promotion needs every promoted group's DesiredCanaries healthy, sets Promoted, clears the
    allocations' DeploymentStatus.Canary (so their services get their normal tags back) and pushes
    the progress deadline out; auto_promote does the same once every canary group allows it.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.nomad.namespaces import multierror
from nomadmesh.agent.nomad.structs import DEPLOYMENT_FAILED, DEPLOYMENT_RUNNING, DESC_RUNNING, is_terminal
from nomadmesh.agent.runtime.events import ZERO_TIME
from nomadmesh.durations import go_quote

DESC_NEEDS_PROMOTION = "Deployment is running but requires manual promotion"
DESC_AUTO_PROMOTION = "Deployment is running pending automatic promotion"


class PromotionRefused(Exception):
    """Nomad answers these with a 500 carrying this text."""


def wanted(group: dict[str, Any]) -> int:
    """`update.canary` of a task group (0 without an update block or with max_parallel 0)."""
    update = group.get("Update") or {}
    return int(update.get("Canary") or 0) if int(update.get("MaxParallel") or 0) > 0 else 0


def placed(dep: dict[str, Any] | None) -> set[str]:
    """IDs of every canary the deployment placed, in any group."""
    if dep is None:
        return set()
    return {a for g in dep["TaskGroups"].values() for a in g.get("PlacedCanaries") or []}


def unpromoted(dep: dict[str, Any]) -> set[str]:
    """Canaries of groups the deployment never promoted."""
    return {a for g in dep["TaskGroups"].values() if not g.get("Promoted") for a in g.get("PlacedCanaries") or []}


def current_deployment(job: dict[str, Any] | None, deployments: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest deployment of the job's version (Nomad's DeploymentCurrent). A job purged and
    registered again restarts at version 0: JobCreateIndex tells them apart."""
    if job is None:
        return None
    return next((d for d in sorted(deployments, key=lambda d: -d["CreateIndex"])
                 if d["JobVersion"] == job["Version"] and d.get("JobCreateIndex", 0) == job.get("CreateIndex", 0)),
                None)


def stale(deployments: list[dict[str, Any]], current: dict[str, Any] | None) -> set[str]:
    """Canaries to stop: unpromoted ones of older deployments or of the current one once failed."""
    return {a for d in deployments if d is not current or d["Status"] == DEPLOYMENT_FAILED for a in unpromoted(d)}


def canarying(dstate: dict[str, Any] | None) -> bool:
    """Nomad's isCanarying: the group wants canaries and is not promoted yet."""
    return bool(dstate and dstate.get("DesiredCanaries") and not dstate.get("Promoted"))


def indexes(n: int, replacing: list[int], canary_slots: set[int], live_slots: set[int], count: int) -> list[int]:
    """Name indexes for `n` new canaries (Nomad's NextCanaries): those of allocations being replaced
    that no canary holds yet, then free indexes below `count`, then from `count` up."""
    out: list[int] = []
    for i in sorted(replacing):
        if len(out) < n and i not in canary_slots and i not in out:
            out.append(i)
    for i in range(count):
        if len(out) < n and i not in canary_slots and i not in live_slots and i not in out:
            out.append(i)
    i = count
    while len(out) < n:
        out.append(i)
        i += 1
    return out


def new_canary_status() -> dict[str, Any]:
    """A canary's DeploymentStatus when placed (Nomad sets only Canary; health comes later)."""
    return {"Healthy": None, "Timestamp": ZERO_TIME, "Canary": True, "ModifyIndex": 0}


def is_canary(alloc: dict[str, Any]) -> bool:
    return bool((alloc.get("DeploymentStatus") or {}).get("Canary"))


def requires_promotion(dep: dict[str, Any]) -> bool:
    return dep["Status"] == DEPLOYMENT_RUNNING and any(
        g.get("DesiredCanaries") and not g.get("Promoted") for g in dep["TaskGroups"].values())


def has_auto_promote(dep: dict[str, Any]) -> bool:
    return dep["Status"] == DEPLOYMENT_RUNNING and all(
        g.get("AutoPromote") for g in dep["TaskGroups"].values() if g.get("DesiredCanaries"))


def created_description(dep: dict[str, Any]) -> str:
    """StatusDescription of a deployment the scheduler just created (setDeploymentStatusAndUpdates)."""
    if not requires_promotion(dep):
        return str(dep["StatusDescription"])
    return DESC_AUTO_PROMOTION if has_auto_promote(dep) else DESC_NEEDS_PROMOTION


def _healthy(alloc: dict[str, Any]) -> bool:
    return not is_terminal(alloc) and (alloc.get("DeploymentStatus") or {}).get("Healthy") is True


def promote(dep: dict[str, Any], allocs: list[dict[str, Any]], groups: list[str] | None,
            now: int) -> tuple[dict[str, Any], list[str]]:
    """Nomad's UpdateDeploymentPromotion: (the promoted deployment, IDs of the canaries that stop
    being canaries). `groups` None promotes all. Raises PromotionRefused (Nomad's multierror text)
    when a promoted group has fewer healthy canaries than it wants."""
    chosen = set(dep["TaskGroups"]) if groups is None else set(groups)
    canary_ids = placed(dep)
    promotable = [a for a in allocs if a["ID"] in canary_ids and a["TaskGroup"] in chosen and _healthy(a)]
    errors = []
    for name in sorted(chosen & set(dep["TaskGroups"])):
        need = int(dep["TaskGroups"][name].get("DesiredCanaries") or 0)
        have = sum(1 for a in promotable if a["TaskGroup"] == name)
        if need and have < need:
            errors.append(f"Task group {go_quote(name)} has {have}/{need} healthy allocations")
    if errors:
        raise PromotionRefused(multierror(errors))
    out = dict(dep, TaskGroups={n: dict(g) for n, g in dep["TaskGroups"].items()}, ModifyTime=now)
    for name, g in out["TaskGroups"].items():
        if name not in chosen:
            continue
        if g.get("ProgressDeadline") and g.get("RequireProgressBy"):
            g["RequireProgressBy"] = now + int(g["ProgressDeadline"])
        g["Promoted"] = True
    if not requires_promotion(out) and out["Status"] == DEPLOYMENT_RUNNING:
        out["StatusDescription"] = DESC_RUNNING
    return out, [a["ID"] for a in promotable]


def auto_promote_ready(dep: dict[str, Any], allocs: list[dict[str, Any]]) -> bool:
    """Nomad's autoPromoteDeployment: every group with canaries has auto_promote and all its
    canaries placed and healthy."""
    if not placed(dep) or not requires_promotion(dep):
        return False
    by_id = {a["ID"]: a for a in allocs}
    for g in dep["TaskGroups"].values():
        need = int(g.get("DesiredCanaries") or 0)
        if need < 1:
            continue
        ids = g.get("PlacedCanaries") or []
        if not g.get("AutoPromote") or len(ids) < need:
            return False
        if sum(1 for i in ids if i in by_id and (by_id[i].get("DeploymentStatus") or {}).get("Healthy")) != need:
            return False
    return True

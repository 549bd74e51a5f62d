"""One scheduling pass for a job, shared by the scheduler and the plan endpoint. Pure.

reconcile() says what should change; this adds whether the node (None: there is none) can take the placements
(datacenters, drivers, network mode, static ports) and returns Nomad's FailedTGAllocs for those it cannot.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.nomad import feasibility
from nomadmesh.agent.nomad.reconcile import GroupPlan, UpdateKind, reconcile


@dataclass
class JobPlan:
    groups: dict[str, GroupPlan]
    failed: dict[str, dict[str, Any]]  # task group -> AllocMetric

    def annotations(self) -> dict[str, Any]:
        return {"DesiredTGUpdates": {n: p.annotations() for n, p in self.groups.items()}, "PreemptedAllocs": None}


def used_static_ports(allocs: list[dict[str, Any]], exclude: set[str]) -> dict[int, str]:
    """Host ports held by live allocations (other than those about to stop)."""
    used: dict[int, str] = {}
    for a in allocs:
        if a["DesiredStatus"] != "run" or a["ID"] in exclude or a["ClientStatus"] in ("complete", "failed", "lost"):
            continue
        for p in ((a.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []:
            used[int(p["Value"])] = a["ID"]
    return used


def plan_job(job: dict[str, Any] | None, job_allocs: list[dict[str, Any]], all_allocs: list[dict[str, Any]],
             node: dict[str, Any] | None, update_kind: UpdateKind,
             destructive_limit: Callable[[str], int] = lambda _g: 1 << 30, now: int = 0,
             active_deployments: frozenset[str] | set[str] = frozenset(), current: dict[str, Any] | None = None,
             stale_canaries: frozenset[str] | set[str] = frozenset()) -> JobPlan:
    groups = reconcile(job, job_allocs, update_kind, destructive_limit, now, active_deployments, current,
                       stale_canaries)
    failed: dict[str, dict[str, Any]] = {}
    if job is None or job.get("Stop"):
        return JobPlan(groups, failed)
    leaving = {aid for p in groups.values() for aid in p.stop} | {
        aid for p in groups.values() for aid, _ in p.destructive} | {
        aid for p in groups.values() for aid, _ in p.reschedule_now} | {
        aid for p in groups.values() for aid, _ in p.migrate}
    used = used_static_ports(all_allocs, leaving)
    for tg in job["TaskGroups"]:
        plan = groups.get(tg["Name"])
        wanted = len(plan.place) + len(plan.destructive) + len(plan.reschedule_now) + len(plan.migrate) \
            + len(plan.canaries) if plan else 0
        if not wanted:
            continue
        if node is None or not feasibility.in_datacenters(job, node):  # None: no node at all (purged)
            failed[tg["Name"]] = feasibility.no_eligible_nodes_metric(wanted)
            continue
        if not feasibility.eligible(node):
            failed[tg["Name"]] = feasibility.no_eligible_node_metric(node, wanted)
            continue
        constraint = feasibility.constraint_reason(tg, node, job)
        exhausted = None if constraint else feasibility.exhausted_reason(tg, used)
        if constraint or exhausted:
            failed[tg["Name"]] = feasibility.alloc_metric(node, wanted, constraint, exhausted)
    return JobPlan(groups, failed)

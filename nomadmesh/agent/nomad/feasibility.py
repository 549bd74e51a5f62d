"""Can the local node run a task group? Pure: the answer is Nomad's AllocMetric for a failed placement.

Nomad records why nodes were filtered out in `ConstraintFiltered` (e.g. {"missing drivers": 1}) and
why feasible nodes had no room in `DimensionExhausted` (e.g. {"network: reserved port collision
http=5000": 1}); the plan endpoint and the evaluation's FailedTGAllocs both show it.
"""
from __future__ import annotations

from typing import Any

MISSING_DRIVERS = "missing drivers"


def group_network_mode(tg: dict[str, Any]) -> str:
    nets = tg.get("Networks") or []
    return (nets[0].get("Mode") or "host") if nets else "host"


def static_ports(tg: dict[str, Any]) -> list[dict[str, Any]]:
    nets = tg.get("Networks") or []
    return list(nets[0].get("ReservedPorts") or []) if nets else []


def constraint_reason(tg: dict[str, Any], node: dict[str, Any]) -> str | None:
    """Why the node is filtered out for this group, in Nomad's words, or None when it fits."""
    drivers = node.get("Drivers") or {}
    for task in tg.get("Tasks") or []:
        if task.get("Driver") not in drivers:
            return MISSING_DRIVERS
    mode = group_network_mode(tg)
    if mode == "bridge" and node.get("_BridgeUnavailable"):
        return f"bridge network mode unavailable: {node['_BridgeUnavailable']}"
    if mode not in ("host", "bridge"):
        return f"missing network mode {mode!r} (this node supports host and bridge)"
    return None


def exhausted_reason(tg: dict[str, Any], used_static: dict[int, str]) -> str | None:
    """A static port another allocation (or another process) already holds."""
    for port in static_ports(tg):
        value = int(port.get("Value") or 0)
        if value in used_static:
            return f"network: reserved port collision {port.get('Label')}={value}"
    return None


def alloc_metric(node: dict[str, Any], queued: int, constraint: str | None = None,
                 exhausted: str | None = None) -> dict[str, Any]:
    """Nomad's AllocMetric for a group that could not be placed `queued` times."""
    return {
        "NodesEvaluated": 1,
        "NodesFiltered": 1 if constraint else 0,
        "NodesInPool": 1,
        "NodesAvailable": {node["Datacenter"]: 1},
        "ClassFiltered": None,
        "ConstraintFiltered": {constraint: 1} if constraint else None,
        "NodesExhausted": 1 if exhausted else 0,
        "ClassExhausted": None,
        "DimensionExhausted": {exhausted: 1} if exhausted else None,
        "QuotaExhausted": None,
        "ResourcesExhausted": None,
        "Scores": None,
        "ScoreMetaData": None,
        "AllocationTime": 0,
        "CoalescedFailures": max(queued - 1, 0),
    }

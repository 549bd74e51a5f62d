"""Can the local node run a task group? Pure: the answer is Nomad's AllocMetric for a failed placement.

Nomad records why nodes were filtered out in `ConstraintFiltered` (e.g. {"missing drivers": 1}) and
why feasible nodes had no room in `DimensionExhausted` (e.g. {"network: reserved port collision
http=5000": 1}); the plan endpoint and the evaluation's FailedTGAllocs both show it.
"""
from __future__ import annotations

import re
from typing import Any

MISSING_DRIVERS = "missing drivers"
MISSING_HOST_VOLUMES = "missing compatible host volumes"


def group_network_mode(tg: dict[str, Any]) -> str:
    nets = tg.get("Networks") or []
    return (nets[0].get("Mode") or "host") if nets else "host"


def static_ports(tg: dict[str, Any]) -> list[dict[str, Any]]:
    nets = tg.get("Networks") or []
    return list(nets[0].get("ReservedPorts") or []) if nets else []


def constraint_reason(tg: dict[str, Any], node: dict[str, Any], job: dict[str, Any] | None = None) -> str | None:
    """Why the node is filtered out for this group, in Nomad's words, or None when it fits: the
    job's constraints, then drivers, then the group's and its tasks' constraints (Nomad's order)."""
    for c in (job or {}).get("Constraints") or []:
        if not constraint_holds(c, node):
            return constraint_text(c)
    drivers = node.get("Drivers") or {}
    for task in tg.get("Tasks") or []:
        if task.get("Driver") not in drivers:
            return MISSING_DRIVERS
    for c in [*(tg.get("Constraints") or []), *(c for t in tg.get("Tasks") or [] for c in t.get("Constraints") or [])]:
        if not constraint_holds(c, node):
            return constraint_text(c)
    if not host_volumes_fit(tg, node):
        return MISSING_HOST_VOLUMES
    mode = group_network_mode(tg)
    if mode == "bridge" and node.get("_BridgeUnavailable"):
        return f"bridge network mode unavailable: {node['_BridgeUnavailable']}"
    if mode not in ("host", "bridge"):
        return f"missing network mode {mode!r} (this node supports host and bridge)"
    return None


def host_volumes_fit(tg: dict[str, Any], node: dict[str, Any]) -> bool:
    """Nomad's HostVolumeChecker for static host volumes: each host volume the group asks for is one
    the node has, and a read-only one only for a read-only request (sticky needs a dynamic one)."""
    have = node.get("HostVolumes") or {}
    for req in (tg.get("Volumes") or {}).values():
        if req.get("Type") != "host":
            continue
        vol = have.get(req.get("Source") or "")
        if vol is None or req.get("Sticky") or (not req.get("ReadOnly") and vol.get("ReadOnly")):
            return False
    return True


def constraint_text(c: dict[str, Any]) -> str:
    """Nomad's Constraint.String(), the key of AllocMetric.ConstraintFiltered."""
    return f"{c.get('LTarget') or ''} {c.get('Operand') or ''} {c.get('RTarget') or ''}"


def resolve_target(target: str, node: dict[str, Any]) -> tuple[str, bool]:
    """Nomad's resolveTarget: a literal, or the node's id, datacenter, name, class, pool, attr.* or meta.*."""
    if not target.startswith("${"):
        return target, True
    fixed = {"${node.unique.id}": "ID", "${node.datacenter}": "Datacenter", "${node.unique.name}": "Name",
             "${node.class}": "NodeClass", "${node.pool}": "NodePool"}
    if target in fixed:
        return str(node.get(fixed[target]) or ""), True
    for prefix, where in (("${attr.", "Attributes"), ("${meta.", "Meta")):
        if target.startswith(prefix):
            name = target[len(prefix):].removesuffix("}")
            values = node.get(where) or {}
            return (str(values[name]), True) if name in values else ("", False)
    return "", False


# Nomad's version constraints (hashicorp/go-version, semver) are not evaluated by the dev agent: a job
# using them is refused at registration rather than placed as if they held.
UNEVALUATED = ("version", "semver")


def unevaluated_constraint(job: dict[str, Any]) -> str | None:
    """The refusal for a constraint the dev agent cannot evaluate, or None."""
    groups = job.get("TaskGroups") or []
    every = [*(job.get("Constraints") or []), *(c for g in groups for c in g.get("Constraints") or []),
             *(c for g in groups for t in g.get("Tasks") or [] for c in t.get("Constraints") or [])]
    for c in every:
        if c.get("Operand") in UNEVALUATED:
            return (f'constraint "{constraint_text(c)}": operator "{c["Operand"]}" not supported by the dev agent '
                    "(it evaluates =, !=, <, <=, >, >=, regexp, set_contains*, is_set, is_not_set)")
    return None


def constraint_holds(c: dict[str, Any], node: dict[str, Any]) -> bool:
    """Nomad's checkConstraint for one node."""
    op = c.get("Operand") or "="
    if op in ("distinct_hosts", "distinct_property"):
        return True
    left, lfound = resolve_target(c.get("LTarget") or "", node)
    right, rfound = resolve_target(c.get("RTarget") or "", node)
    both = lfound and rfound
    if op in ("=", "==", "is"):
        return both and left == right
    if op in ("!=", "not"):
        return left != right
    if op in ("<", "<=", ">", ">="):
        return both and _ordered(op, left, right)
    if op == "is_set":
        return lfound
    if op == "is_not_set":
        return not lfound
    if op == "regexp":
        try:
            return both and re.search(right, left) is not None
        except re.error:
            return False
    if op in ("set_contains", "set_contains_all", "set_contains_any"):
        have = {v.strip() for v in left.split(",")}
        want = [v.strip() for v in right.split(",")]
        return both and (any(w in have for w in want) if op == "set_contains_any" else all(w in have for w in want))
    return False


_INTEGER = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt's base 10 (Python's int() also takes "1_0", " 1")


def _ordered(op: str, left: str, right: str) -> bool:
    """Nomad's checkOrder: as integers, else as floats, else lexically."""
    a: int | float | str
    b: int | float | str
    if _INTEGER.fullmatch(left) and _INTEGER.fullmatch(right):
        a, b = int(left), int(right)
    else:
        try:
            a, b = float(left), float(right)
        except ValueError:
            a, b = left, right
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]


def exhausted_reason(tg: dict[str, Any], used_static: dict[int, str]) -> str | None:
    """A static port another allocation (or another process) already holds."""
    for port in static_ports(tg):
        value = int(port.get("Value") or 0)
        if value in used_static:
            return f"network: reserved port collision {port.get('Label')}={value}"
    return None


def in_datacenters(job: dict[str, Any], node: dict[str, Any]) -> bool:
    """Nomad's Node.IsInAnyDC: one of the job's `datacenters` matches the node's, where `*` matches
    any run of characters (go-glob: no other wildcard; Nomad 1.5+ defaults `datacenters` to ["*"])."""
    dcs = job.get("Datacenters") or ["*"]
    return any(re.fullmatch(".*".join(map(re.escape, dc.split("*"))), node["Datacenter"], re.DOTALL)
               for dc in dcs)


def no_eligible_nodes_metric(queued: int) -> dict[str, Any]:
    """The AllocMetric when no ready node is in the job's datacenters: nothing evaluated, so the CLI
    says "No nodes were eligible for evaluation" and NodesAvailable (ready nodes by DC) is empty."""
    return {**alloc_metric({"Datacenter": ""}, queued), "NodesEvaluated": 0, "NodesInPool": 0,
            "NodesAvailable": {}}


def eligible(node: dict[str, Any]) -> bool:
    """A node marked ineligible (or draining) is not among Nomad's ready nodes: nothing is placed on it."""
    return node.get("SchedulingEligibility", "eligible") == "eligible"


def no_eligible_node_metric(node: dict[str, Any], queued: int) -> dict[str, Any]:
    """The AllocMetric when no node was eligible: none evaluated (`nomad job status` says "No nodes
    were eligible for evaluation"), none available in the datacenter."""
    return dict(alloc_metric(node, queued), NodesEvaluated=0, NodesAvailable={node["Datacenter"]: 0})


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

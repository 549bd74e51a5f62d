"""Nomad's plan answer as readable lines, like `nomad job plan` prints it. Pure.

    +/- Job: "tax"
    +/- Task Group: "tax" (1 create/destroy update)
      +/- Task: "tax" (forces create/destroy update)
        +/- Env[GREETING]: "hi" => "hello"

Markers: `+` added, `-` removed, `~` changed (`+/-` for an edited object). Placements come from
Annotations.DesiredTGUpdates; placement failures from FailedTGAllocs.
"""
from __future__ import annotations

from typing import Any

_MARK = {"Added": "+", "Deleted": "-", "Edited": "+/-", "None": " "}
_UPDATE_WORDS = (("Place", "create"), ("Stop", "destroy"), ("InPlaceUpdate", "in-place update"),
                 ("DestructiveUpdate", "create/destroy update"), ("Canary", "canary"), ("Ignore", "ignore"))


def _value(v: Any) -> str:
    return f'"{v}"'


def _field(f: dict[str, Any], indent: str) -> str:
    kind, name = f.get("Type", "None"), f.get("Name", "")
    note = f" ({', '.join(f['Annotations'])})" if f.get("Annotations") else ""
    if kind == "Added":
        return f"{indent}+ {name}: {_value(f.get('New'))}{note}"
    if kind == "Deleted":
        return f"{indent}- {name}: {_value(f.get('Old'))}{note}"
    return f"{indent}~ {name}: {_value(f.get('Old'))} => {_value(f.get('New'))}{note}"


def _object(o: dict[str, Any], indent: str) -> list[str]:
    lines = [f"{indent}{_MARK.get(o.get('Type', 'None'), '~')} {o.get('Name', '')} {{"]
    lines += _members(o, indent + "  ")
    lines.append(f"{indent}  }}")
    return lines


def _members(d: dict[str, Any], indent: str) -> list[str]:
    lines = [_field(f, indent) for f in d.get("Fields") or [] if f.get("Type") != "None"]
    for o in d.get("Objects") or []:
        if o.get("Type") != "None":
            lines += _object(o, indent)
    return lines


def _counts(updates: dict[str, int] | None) -> str:
    parts = [f"{updates[k]} {word}" for k, word in _UPDATE_WORDS if updates and updates.get(k)]
    return f" ({', '.join(parts)})" if parts else ""


def format_plan(job_id: str, answer: dict[str, Any]) -> list[str]:
    """Lines for one job's plan answer (`POST /v1/job/:id/plan` with Diff=true)."""
    diff = answer.get("Diff") or {"Type": "None", "ID": job_id}
    desired = ((answer.get("Annotations") or {}).get("DesiredTGUpdates")) or {}
    lines = [f"{_MARK.get(diff.get('Type', 'None'), '~')} Job: \"{diff.get('ID') or job_id}\""]
    lines += _members(diff, "  ")
    groups = {g.get("Name"): g for g in diff.get("TaskGroups") or []}
    for name in sorted(set(groups) | set(desired)):
        g = groups.get(name, {"Type": "None", "Name": name})
        lines.append(f"  {_MARK.get(g.get('Type', 'None'), '~')} Task Group: \"{name}\"{_counts(desired.get(name))}")
        lines += _members(g, "    ")
        for t in g.get("Tasks") or []:
            if t.get("Type") == "None":
                continue
            note = f" ({', '.join(t['Annotations'])})" if t.get("Annotations") else ""
            lines.append(f"    {_MARK.get(t.get('Type', 'None'), '~')} Task: \"{t.get('Name')}\"{note}")
            lines += _members(t, "      ")
    for group, metric in sorted((answer.get("FailedTGAllocs") or {}).items()):
        lines.append(f"  ! Task Group \"{group}\" cannot be placed: {placement_reason(metric)}")
    return lines


def placement_reason(metric: dict[str, Any]) -> str:
    """Why Nomad could not place a group, from its AllocMetric ("missing drivers", "resources exhausted")."""
    reasons: list[str] = []
    for key in ("ConstraintFiltered", "DimensionExhausted", "ClassFiltered"):
        for what, n in sorted((metric.get(key) or {}).items()):
            reasons.append(f"{what} ({n} node{'s' if n != 1 else ''})" if isinstance(n, int) else str(what))
    if not reasons and metric.get("NodesEvaluated") == 0:
        reasons.append("no nodes were eligible for evaluation")
    if not reasons and metric.get("NodesExhausted"):
        reasons.append("resources exhausted")
    return "; ".join(reasons) or "no node can run it"

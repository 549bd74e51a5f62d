"""Drift and orphans: where the cluster no longer matches the definitions. Pure.

Drift: a job whose definition hash is unchanged can still differ from what the definition
renders, because someone changed it out of band (`nomad job scale`, an env var added in the UI).
Nomad's own plan (`POST /v1/job/:id/plan`, Diff: true) compares the live job with the rendered
one field by field; any difference turns the `noop` into an `update` whose reason lists the
fields, and deploy registers the definition again, which restores it.

    drifted_fields(diff)          -> ['group "web": Count: "3" => "1"', ...]
    with_drift(plan, answers)     -> the Plan with drifted noops turned into updates

Orphans: jobs this project owns (nomadmesh_managed, and nomadmesh_project naming this project)
that no definition produces any more. Only a job carrying this project's name is ever one:
jobs of another project, of another environment, or written before the project key existed are
never touched.

    orphans(live_stubs, rendered_names, project) -> ['old-service', ...]
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from nomadmesh.deploy.plan import Plan, is_managed
from nomadmesh.render.ownership import PROJECT_KEY

# The diff of a live job against the same definition re-rendered shows no field; these change on
# every upgrade of nomadmesh itself and are not drift someone made by hand.
_NOT_DRIFT = {"Meta[nomadmesh_version]"}


def _fields(d: Mapping[str, Any], where: str) -> list[str]:
    out = []
    for f in d.get("Fields") or []:
        if f.get("Type", "None") == "None" or f.get("Name") in _NOT_DRIFT:
            continue
        kind = f["Type"]
        old, new = f.get("Old"), f.get("New")
        change = (f'"{old}" => "{new}"' if kind == "Edited" else
                  f'not in the definition (live "{old}")' if kind == "Deleted" else f'missing (definition "{new}")')
        out.append(f"{where}{f.get('Name')}: {change}")
    for o in d.get("Objects") or []:
        if o.get("Type", "None") != "None":
            out += _fields(o, f"{where}{o.get('Name')} ")
    return out


def drifted_fields(diff: Mapping[str, Any] | None) -> list[str]:
    """Readable `where field: live => definition` lines for every difference Nomad's diff shows.

    Nomad diffs the live job (Old) against the submitted one (New): Old is what someone changed.
    """
    if not diff or diff.get("Type", "None") == "None":
        return []
    out = _fields(diff, "")
    for g in diff.get("TaskGroups") or []:
        if g.get("Type", "None") == "None":
            continue
        out += _fields(g, f'group "{g.get("Name")}" ')
        for t in g.get("Tasks") or []:
            if t.get("Type", "None") != "None":
                out += _fields(t, f'task "{t.get("Name")}" ')
    return out


def with_drift(plan: Plan, answers: Mapping[str, Mapping[str, Any]]) -> Plan:
    """`plan` with each noop whose Nomad plan diff shows drift turned into an update (reason: the fields)."""
    changes = []
    for c in plan.changes:
        fields = drifted_fields((answers.get(c.name) or {}).get("Diff")) if c.action == "noop" else []
        if fields:
            c = replace(c, action="update", reason="drift: changed outside nomadmesh: " + "; ".join(fields))
        changes.append(c)
    return Plan(tuple(changes))


def orphans(live: Iterable[Mapping[str, Any]], rendered: Iterable[str], project: str) -> list[str]:
    """Running jobs of `project` that no definition renders any more, by name."""
    produced = set(rendered)
    return sorted(j["ID"] for j in live
                  if is_managed(j) and not j.get("Stop") and (j.get("Meta") or {}).get(PROJECT_KEY) == project
                  and j["ID"] not in produced)

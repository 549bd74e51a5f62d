"""What must change for a job's allocations to match the job: Nomad's reconciler, for one node.

Pure. For each task group it decides which allocation indexes to place, which allocations to stop,
which to update in place and which to replace (destructive update), like Nomad's
`allocReconciler` with `genericAllocUpdateFn`:
  * the alloc already runs this job version            -> ignore
  * the alloc ended (failed/complete) on an old version -> replace
  * `update_kind(old_group, new_group) == "destructive"` -> replace (bounded by max_parallel)
  * otherwise                                            -> in place
  * the alloc was stopped (`DesiredTransition.Migrate`) -> replace (Nomad's migrate)
  * the alloc failed and ForceReschedule is set         -> reschedule now, whatever the policy says
  * the alloc failed on this version                  -> reschedule (nomad/reschedule.py):
        now if due within a second, later (a follow-up evaluation) if delayed, never if its
        policy's attempts are spent; not while its deployment is running (the deployment
        watcher fails the deployment first and its follow-up evaluation reschedules)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.agent.nomad import reschedule
from nomadmesh.agent.nomad.structs import alloc_index

UpdateKind = Callable[[dict[str, Any], dict[str, Any]], str]


@dataclass
class GroupPlan:
    name: str
    place: list[int] = field(default_factory=list)
    stop: list[str] = field(default_factory=list)
    inplace: list[str] = field(default_factory=list)
    destructive: list[tuple[str, int]] = field(default_factory=list)  # (old alloc id, index)
    reschedule_now: list[tuple[str, int]] = field(default_factory=list)  # (failed alloc id, index)
    reschedule_later: list[tuple[str, int]] = field(default_factory=list)  # (failed alloc id, when ns)
    migrate: list[tuple[str, int]] = field(default_factory=list)  # (alloc id asked to move, index)
    deferred: int = 0  # destructive updates held back by max_parallel
    ignore: int = 0

    def annotations(self) -> dict[str, int]:
        """Plan's DesiredTGUpdates entry."""
        return {
            "Ignore": self.ignore + len(self.reschedule_later),
            "Place": len(self.place) + len(self.reschedule_now),
            "Migrate": len(self.migrate),
            "Stop": len(self.stop),
            "InPlaceUpdate": len(self.inplace),
            "DestructiveUpdate": len(self.destructive) + self.deferred,
            "Canary": 0,
            "Preemptions": 0,
        }

    @property
    def changes(self) -> bool:
        return bool(self.place or self.stop or self.inplace or self.destructive or self.reschedule_now
                    or self.migrate)


def _group(job: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if job is None:
        return None
    return next((g for g in job.get("TaskGroups") or [] if g["Name"] == name), None)


def reconcile(
    job: dict[str, Any] | None,
    allocs: list[dict[str, Any]],
    update_kind: UpdateKind,
    destructive_limit: Callable[[str], int] = lambda _g: 1 << 30,
    now: int = 0,
    active_deployments: frozenset[str] | set[str] = frozenset(),
) -> dict[str, GroupPlan]:
    """`job` None or stopped means stop everything. `allocs`: every allocation of the job.
    `now` (ns) decides whether a failed allocation is due for rescheduling (0: never)."""
    live = [a for a in allocs if a["DesiredStatus"] == "run"]
    names = {a["TaskGroup"] for a in live}
    running_job = None if job is None or job.get("Stop") else job  # None: stop everything
    if running_job is not None:
        names |= {g["Name"] for g in running_job["TaskGroups"]}
    plans: dict[str, GroupPlan] = {}
    for name in sorted(names):
        plan = plans[name] = GroupPlan(name)
        mine = sorted((a for a in live if a["TaskGroup"] == name), key=lambda a: -a["CreateIndex"])
        tg = None if running_job is None else _group(running_job, name)
        if running_job is None or tg is None:
            plan.stop = [a["ID"] for a in mine]
            continue
        count = int(tg.get("Count", 1))
        by_index: dict[int, dict[str, Any]] = {}
        for alloc in mine:
            i = alloc_index(alloc)
            if i >= count or i in by_index:
                plan.stop.append(alloc["ID"])  # beyond count, or an older duplicate of a slot
            else:
                by_index[i] = alloc
        limit = destructive_limit(name)
        for i in range(count):
            a = by_index.get(i)
            if a is None:
                plan.place.append(i)
                continue
            transition = a.get("DesiredTransition") or {}
            if transition.get("Migrate") and a["ClientStatus"] not in ("failed", "complete", "lost"):
                plan.migrate.append((a["ID"], i))  # `nomad alloc stop`: replaced, outside max_parallel
                continue
            if transition.get("ForceReschedule") and a["ClientStatus"] == "failed":
                plan.reschedule_now.append((a["ID"], i))  # `nomad job eval -force-reschedule`
                continue
            if a.get("JobVersion") == running_job.get("Version"):
                when, eligible = reschedule.next_reschedule_time(a)
                if not (now and eligible) or a.get("DeploymentID") in active_deployments:
                    plan.ignore += 1
                elif when <= now + reschedule.RESCHEDULE_WINDOW_NS:
                    plan.reschedule_now.append((a["ID"], i))
                else:
                    plan.reschedule_later.append((a["ID"], when))
                continue
            old_tg = _group(a.get("Job"), name) or {}
            ended = a["ClientStatus"] in ("failed", "complete", "lost")
            if ended or update_kind(old_tg, tg) == "destructive":
                if len(plan.destructive) < limit:
                    plan.destructive.append((a["ID"], i))
                else:
                    plan.deferred += 1
            else:
                plan.inplace.append(a["ID"])
    return plans

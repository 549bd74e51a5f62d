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
Canaries (nomad/canaries.py): a group with `update.canary` whose change is destructive places its
canaries beside the old allocations and replaces nothing until the deployment promotes it; then a
canary keeps its slot and the old allocation there stops. Unpromoted canaries of an older or a
failed deployment stop.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.agent.nomad import canaries, reschedule
from nomadmesh.agent.nomad.structs import DEPLOYMENT_FAILED, DEPLOYMENT_PAUSED, alloc_index

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
    canaries: list[int] = field(default_factory=list)  # name indexes of canaries to place
    desired_canaries: int = 0  # the deployment's DesiredCanaries for the group, when canaries are wanted
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
            "Canary": len(self.canaries),
            "Preemptions": 0,
        }

    @property
    def changes(self) -> bool:
        return bool(self.place or self.stop or self.inplace or self.destructive or self.reschedule_now
                    or self.migrate or self.canaries)


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
    current: dict[str, Any] | None = None,
    stale_canaries: frozenset[str] | set[str] = frozenset(),
) -> dict[str, GroupPlan]:
    """`job` None or stopped means stop everything. `allocs`: every allocation of the job.
    `now` (ns) decides whether a failed allocation is due for rescheduling (0: never).
    `current`: the deployment of the job's version, if any; `stale_canaries`: unpromoted canaries
    of older or failed deployments."""
    live = [a for a in allocs if a["DesiredStatus"] == "run"]
    names = {a["TaskGroup"] for a in live}
    running_job = None if job is None or job.get("Stop") else job  # None: stop everything
    if running_job is not None:
        names |= {g["Name"] for g in running_job["TaskGroups"]}
    placed_canaries = canaries.placed(current)
    plans: dict[str, GroupPlan] = {}
    for name in sorted(names):
        plan = plans[name] = GroupPlan(name)
        mine = sorted((a for a in live if a["TaskGroup"] == name), key=lambda a: -a["CreateIndex"])
        tg = None if running_job is None else _group(running_job, name)
        if running_job is None or tg is None:
            plan.stop = [a["ID"] for a in mine]
            continue
        plan.stop = [a["ID"] for a in mine if a["ID"] in stale_canaries]
        mine = [a for a in mine if a["ID"] not in stale_canaries]
        dstate = (current or {}).get("TaskGroups", {}).get(name)
        my_canaries = [a for a in mine if a["ID"] in placed_canaries]
        if canaries.canarying(dstate):  # old allocations untouched, canaries aside until promoted
            mine = [a for a in mine if a["ID"] not in placed_canaries]
        else:  # a promoted canary keeps its slot: the old allocation there is the one to stop
            mine.sort(key=lambda a: (a["ID"] not in placed_canaries, -a["CreateIndex"]))
        replacing = _plan_slots(plan, running_job, tg, mine, update_kind, now, active_deployments)
        want = canaries.wanted(tg)
        halted = current is not None and current["Status"] in (DEPLOYMENT_FAILED, DEPLOYMENT_PAUSED)
        promoted = bool(dstate and dstate.get("Promoted"))
        if want and replacing and len(my_canaries) < want and not promoted:
            plan.desired_canaries = want
            if not halted:
                plan.canaries = canaries.indexes(want - len(my_canaries), [i for _a, i in replacing],
                                                 {alloc_index(a) for a in my_canaries},
                                                 {alloc_index(a) for a in mine}, int(tg.get("Count", 1)))
        if plan.desired_canaries or canaries.canarying(dstate):
            # Nothing replaced before promotion; Nomad counts those and the running canaries ignored.
            plan.ignore += len(replacing) + (len(my_canaries) if canaries.canarying(dstate) else 0)
            plan.place = []
            continue
        limit = destructive_limit(name)
        plan.destructive = replacing[:limit]
        plan.deferred += len(replacing) - len(plan.destructive)
    return plans


def _plan_slots(plan: GroupPlan, job: dict[str, Any], tg: dict[str, Any], mine: list[dict[str, Any]],
                update_kind: UpdateKind, now: int, active_deployments: frozenset[str] | set[str]
                ) -> list[tuple[str, int]]:
    """Fill `plan` for each slot of the group; returns the (alloc, index) pairs a destructive
    update would replace, for the caller to bound (max_parallel, canaries)."""
    count = int(tg.get("Count", 1))
    name = tg["Name"]
    by_index: dict[int, dict[str, Any]] = {}
    for alloc in mine:
        i = alloc_index(alloc)
        if i >= count or i in by_index:
            plan.stop.append(alloc["ID"])  # beyond count, or an older duplicate of a slot
        else:
            by_index[i] = alloc
    replacing: list[tuple[str, int]] = []
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
        if a.get("JobVersion") == job.get("Version"):
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
            replacing.append((a["ID"], i))
        else:
            plan.inplace.append(a["ID"])
    return replacing

"""Roll the project back to a recorded release: its jobs' versions and its config entries.

    plan_rollback(target, live_jobs, kept, live_entries) -> RollbackPlan      pure
    read_rollback(nomad, consul, target, latest) -> RollbackPlan            reads only
    apply_rollback(nomad, consul, plan, progress) -> RollbackOutcome        writes

Jobs go back with Nomad's job revert endpoint (a copy of the old version becomes the newest
version, its submitted source with it), guarded by EnforcePriorVersion = the version the plan saw.
Entries are written back whole with Consul's check-and-set on the ModifyIndex the plan saw (0:
must still be absent), or deleted the same way when the release had none. Anything changed
between plan and apply is refused, never overwritten.

Order: entries that are written (allows a restored job needs) go before the jobs, deletions after
them. What cannot be done (a job purged since, a version Nomad no longer keeps) is found while
planning, before anything is written. If a write still fails midway, the outcome says what was
applied and what was not.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.releases import Entry, Release, read_entries, split_key
from nomadmesh.deploy.watch import JobResult, JobWatch
from nomadmesh.errors import TargetError
from nomadmesh.mesh.chain_order import RANK, take_safely
from nomadmesh.progress import Progress


@dataclass(frozen=True)
class JobStep:
    name: str
    live_version: int
    to_version: int


@dataclass(frozen=True)
class EntryStep:
    key: str  # "kind/name"
    current: Entry | None
    wanted: Entry | None
    modify_index: int  # what the plan saw: the CAS index of the write (0: absent)

    @property
    def action(self) -> str:
        return "create" if self.current is None else "delete" if self.wanted is None else "restore"


@dataclass(frozen=True)
class RollbackPlan:
    target: Release
    jobs: tuple[JobStep, ...] = ()
    entries: tuple[EntryStep, ...] = ()
    problems: tuple[str, ...] = ()  # why it cannot be done; nothing is applied when any
    left_alone: tuple[str, ...] = ()  # live jobs of the project that the release does not know

    @property
    def empty(self) -> bool:
        return not self.jobs and not self.entries


def plan_rollback(target: Release, live_jobs: Mapping[str, int], kept: Mapping[str, set[int]],
                  live_entries: Mapping[str, tuple[Entry | None, int]],
                  newer_jobs: Iterable[str] = ()) -> RollbackPlan:
    """What going back to `target` takes. `live_jobs`: live version per job name Nomad has;
    `kept`: the versions Nomad still keeps per job; `live_entries`: (entry, ModifyIndex) per key;
    `newer_jobs`: jobs of later releases (reported as left alone when the target lacks them)."""
    problems, jobs = [], []
    for name, version in sorted(target.jobs.items()):
        if name not in live_jobs:
            problems.append(f"job {name!r} is gone from Nomad (purged since release {target.number}): "
                            "it has no versions left to revert to")
        elif live_jobs[name] != version:
            if version not in kept.get(name, set()):
                problems.append(f"job {name!r}: Nomad no longer keeps version {version} "
                                f"(it keeps the last few; live is {live_jobs[name]})")
            else:
                jobs.append(JobStep(name, live_jobs[name], version))
    entries = []
    for key, wanted in sorted(target.entries.items()):
        current, index = live_entries.get(key, (None, 0))
        if current != wanted:
            entries.append(EntryStep(key, current, wanted, index))
    left = sorted(n for n in newer_jobs if n not in target.jobs and n in live_jobs)
    return RollbackPlan(target, tuple(jobs), tuple(entries), tuple(problems), tuple(left))


def _sources(entry: Entry | None) -> dict[str, str]:
    out = {}
    for s in (entry or {}).get("Sources") or []:
        perms = s.get("Permissions")
        out[str(s.get("Name"))] = f"L7 ({len(perms)} permission{'s' if len(perms) != 1 else ''})" if perms \
            else str(s.get("Action", "?"))
    return out


def describe(step: EntryStep) -> str:
    """One line saying what restoring the entry changes, e.g. `web: deny → allow; +admin: allow`."""
    kind, _ = split_key(step.key)
    if kind == "service-intentions":
        now, then = _sources(step.current), _sources(step.wanted)
        parts = [f"{n}: {now[n]} → {then[n]}" for n in sorted(now.keys() & then.keys()) if now[n] != then[n]]
        parts += [f"+{n}: {then[n]}" for n in sorted(then.keys() - now.keys())]
        parts += [f"-{n} ({now[n]})" for n in sorted(now.keys() - then.keys())]
        what = "; ".join(parts) or "other fields"
    else:
        changed = sorted(k for k in set(step.current or {}) | set(step.wanted or {})
                         if k not in ("Kind", "Name") and (step.current or {}).get(k) != (step.wanted or {}).get(k))
        what = ", ".join(f"{k}: {(step.current or {}).get(k)!r} → {(step.wanted or {}).get(k)!r}" for k in changed)
    return f"{step.action} {step.key}" + (f" ({what})" if what else "")


def plan_lines(plan: RollbackPlan) -> list[str]:
    lines = [f"Roll back to release {plan.target.number} ({plan.target.time}, {plan.target.who}):"]
    lines += [f"  job {s.name}: version {s.live_version} → revert to version {s.to_version}" for s in plan.jobs]
    lines += [f"  {describe(s)}" for s in plan.entries]
    lines += [f"  job {n}: not in release {plan.target.number}, left as it is" for n in plan.left_alone]
    return lines


def to_dict(plan: RollbackPlan) -> dict[str, Any]:
    return {"to": plan.target.number, "problems": list(plan.problems), "left_alone": list(plan.left_alone),
            "jobs": [{"job": s.name, "from": s.live_version, "to": s.to_version} for s in plan.jobs],
            "entries": [{"entry": s.key, "action": s.action, "change": describe(s)} for s in plan.entries]}


def _has_l7(entry: Entry | None) -> bool:
    return any(src.get("Permissions") for src in (entry or {}).get("Sources") or [])


def ordered_steps(plan: RollbackPlan) -> list[tuple[str, Any]]:
    """("entry" | "job", step) in the order that keeps every write acceptable to Consul and the mesh
    working: entries that come back before the jobs (a restored job's allows first), deletions after
    them. Consul refuses L7 intention permissions on a service whose protocol is not HTTP-like, so
    intentions losing their L7 rules go before the service-defaults, and those gaining them after;
    deletions take intentions before service-defaults for the same reason. Resolvers, splitters and
    routers follow the service-defaults, and are deleted before them, router first, in an order where
    every discovery chain still compiles (`nomadmesh.mesh.chain_order`)."""
    def kind(step: EntryStep) -> str:
        return split_key(step.key)[0]

    def effect(step: EntryStep) -> tuple[tuple[str, str], Entry | None]:
        return split_key(step.key), step.wanted

    writes = [s for s in plan.entries if s.wanted is not None]
    first = [s for s in writes if kind(s) == "service-intentions" and not _has_l7(s.wanted)]
    last = [s for s in writes if kind(s) == "service-intentions" and _has_l7(s.wanted)]
    whole = sorted((s for s in writes if kind(s) != "service-intentions"), key=lambda s: RANK[kind(s)])
    deletes = sorted((s for s in plan.entries if s.wanted is None and kind(s) != "service-intentions"),
                     key=lambda s: -RANK[kind(s)])
    # Simulated on the live entries: a resolver losing a subset the live splitter names waits for it.
    state = {split_key(s.key): s.current for s in plan.entries if kind(s) != "service-intentions"}
    now = take_safely(whole, state, effect)
    pending = deletes + whole
    later = take_safely(pending, state, effect) + pending
    intention_deletes = [s for s in plan.entries if s.wanted is None and kind(s) == "service-intentions"]
    return ([("entry", s) for s in first + now + last] + [("job", s) for s in plan.jobs]
            + [("entry", s) for s in intention_deletes + later])


# --- I/O edge --------------------------------------------------------------------------------


def read_rollback(nomad: NomadAPI, consul: ConsulAPI, target: Release, latest: Release | None) -> RollbackPlan:
    """Read what is live and plan going back to `target`."""
    names = set(target.jobs) | set(latest.jobs if latest else ())
    live: dict[str, int] = {}
    kept: dict[str, set[int]] = {}
    for name in sorted(names):
        job = nomad.job(name)
        if job is None:
            continue
        live[name] = int(job.get("Version") or 0)
        if name in target.jobs and live[name] != target.jobs[name]:
            kept[name] = {int(v.get("Version", -1)) for v in nomad.versions(name)}
    return plan_rollback(target, live, kept, read_entries(consul, target.entries), names)


@dataclass
class RollbackOutcome:
    applied: list[str] = field(default_factory=list)
    results: list[JobResult] = field(default_factory=list)
    error: str | None = None
    not_applied: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted and all(r.ok for r in self.results)


def _write_entry(consul: ConsulAPI, step: EntryStep) -> None:
    kind, name = split_key(step.key)
    with consul.errors():
        if step.wanted is None:
            ok = consul.sdk.config.delete(kind, name, cas=step.modify_index)
        else:
            ok = consul.sdk.config.set(kind, name, step.wanted, cas=step.modify_index)
    if not ok:
        raise TargetError(f"{step.key} changed since the rollback was planned; not overwritten")


def apply_rollback(nomad: NomadAPI, consul: ConsulAPI, plan: RollbackPlan, progress: Progress,
                   timeout_s: float = 300.0, detach: bool = False) -> RollbackOutcome:
    """Carry out `plan` (which must have no problems) in the safe order; watch the reverted jobs."""
    outcome = RollbackOutcome()
    steps = ordered_steps(plan)
    reverted: list[tuple[str, str, int | None]] = []
    for i, (what, step) in enumerate(steps):
        try:
            if what == "entry":
                progress.begin(step.key, step.action.capitalize())
                _write_entry(consul, step)
                progress.end(step.key, "done")
                outcome.applied.append(describe(step))
            else:
                progress.begin(step.name, "Reverting")
                out = nomad.revert(step.name, step.to_version, enforce_prior_version=step.live_version)
                version = (nomad.job(step.name) or {}).get("Version")
                progress.end(step.name, f"done (version {version}, a copy of {step.to_version})")
                outcome.applied.append(f"job {step.name}: reverted to version {step.to_version} "
                                       f"(now version {version})")
                reverted.append((step.name, str(out.get("EvalID") or ""), version))
        except (TargetError, KeyboardInterrupt) as e:
            refused = isinstance(e, TargetError)
            progress.end(step.key if what == "entry" else step.name, "refused" if refused else "interrupted", ok=False)
            outcome.error = str(e) if refused else "interrupted (Ctrl-C)"
            outcome.interrupted = not refused
            outcome.not_applied = [describe(s) if w == "entry" else f"job {s.name}: revert to version {s.to_version}"
                                   for w, s in steps[i:]]
            break
    if not detach and not outcome.interrupted:
        deadline = time.monotonic() + timeout_s
        never = threading.Event()
        try:
            for name, eval_id, version in reverted:
                outcome.results.append(JobWatch(nomad, name, "rollback", progress, deadline, never, version)
                                       .run(eval_id))
        except KeyboardInterrupt:  # everything is applied; only the watching stops
            outcome.interrupted = True
    return outcome

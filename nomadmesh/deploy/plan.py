"""Decide what deploy would do, before doing anything: `plan(rendered, live) -> Plan`. Pure.

Per job, comparing the rendered job's `nomadmesh_hash` meta with the live job's:

    create     Nomad has no job of that name
    update     the hashes differ, or the live job was stopped
    noop       same hash, running: registering again would only make a new version
    conflict   a live job of that name that nomadmesh does not manage: never overwritten

`modify_index` is the live JobModifyIndex (0 for a new job): apply registers with EnforceIndex
on it, so a job someone changed after the plan is refused instead of silently overwritten.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from nomadmesh.mesh.entry_plan import EntryChange
from nomadmesh.render.ownership import HASH_KEY, MANAGED_KEY

Action = Literal["create", "update", "noop", "conflict"]
Job = dict[str, Any]


@dataclass(frozen=True)
class JobChange:
    name: str
    action: Action
    job: Job  # the rendered Job, as the API takes it
    modify_index: int = 0  # live JobModifyIndex; 0 when the job does not exist
    live_version: int | None = None
    reason: str = ""
    submission: Mapping[str, Any] | None = None  # the source the job was parsed from (Nomad's JobSubmission)


@dataclass(frozen=True)
class Plan:
    changes: tuple[JobChange, ...]  # in deploy order
    entries: tuple[EntryChange, ...] = ()  # config entries (intentions, service-defaults): mesh/entry_plan.py
    project: str = ""  # the project owning those entries (their Meta marks); "" when entries were not planned

    @property
    def has_changes(self) -> bool:
        return any(c.action in ("create", "update") for c in self.changes) or any(e.writes for e in self.entries)

    @property
    def conflicts(self) -> tuple[JobChange, ...]:
        return tuple(c for c in self.changes if c.action == "conflict")

    def get(self, name: str) -> JobChange:
        for c in self.changes:
            if c.name == name:
                return c
        raise KeyError(name)


def is_managed(job: Mapping[str, Any]) -> bool:
    return str((job.get("Meta") or {}).get(MANAGED_KEY, "")).lower() == "true"


def job_change(name: str, job: Job, live: Mapping[str, Any] | None,
               submission: Mapping[str, Any] | None = None) -> JobChange:
    return replace(_job_change(name, job, live), submission=submission)


def _job_change(name: str, job: Job, live: Mapping[str, Any] | None) -> JobChange:
    if live is None:
        return JobChange(name, "create", job, 0, None, "new job")
    index, version = int(live.get("JobModifyIndex", 0)), live.get("Version")
    if not is_managed(live):
        return JobChange(name, "conflict", job, index, version,
                         f"a job {name!r} exists that nomadmesh does not manage (no {MANAGED_KEY} meta); "
                         "not overwriting it")
    if live.get("Stop"):
        return JobChange(name, "update", job, index, version, "job was stopped")
    want, have = (job.get("Meta") or {}).get(HASH_KEY), (live.get("Meta") or {}).get(HASH_KEY)
    if want == have:
        return JobChange(name, "noop", job, index, version, "unchanged")
    return JobChange(name, "update", job, index, version, "definition changed")


def plan(rendered: Mapping[str, Job], live: Mapping[str, Mapping[str, Any] | None],
         order: tuple[str, ...] | None = None,
         submissions: Mapping[str, Mapping[str, Any]] | None = None) -> Plan:
    """One JobChange per rendered job, in `order` (default: the rendered mapping's order)."""
    names = order if order is not None else tuple(rendered)
    subs = submissions or {}
    return Plan(tuple(job_change(n, rendered[n], live.get(n), subs.get(n)) for n in names))

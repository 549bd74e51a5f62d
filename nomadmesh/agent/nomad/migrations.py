"""What older agents stored, brought up to date once at start; each migration is recorded in the
state (meta "migrations"), so it never runs twice.

    inject-connect-sidecars  jobs stored before the Connect hook ran at registration (spec.prepare)
                             lack their sidecar tasks and ports: they get them now, in the job, its
                             versions and its allocations (ports from the same dynamic range,
                             avoiding every port held), as if registered today. The runner runs
                             what the allocation says and adds nothing of its own.
    namespace-job-keys       jobs, their versions and submissions were keyed by job ID alone (one
                             job per ID across namespaces); Nomad keys them by (namespace, ID), so
                             they are keyed "<namespace>/<ID>" now.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nomadmesh.agent.nomad import connect_hook, jobs, planner, ports, spec
from nomadmesh.agent.nomad.structs import key_of_job, namespace_of
from nomadmesh.agent.state import State, Txn

log = logging.getLogger("nomadmesh.agent.nomad.migrations")

META_KEY = "migrations"
INJECT_SIDECARS = "inject-connect-sidecars"
NAMESPACE_JOB_KEYS = "namespace-job-keys"
LIVE_CLIENT_STATUSES = ("pending", "running")  # an allocation whose tasks may still run or start


def with_sidecars(job: dict[str, Any]) -> dict[str, Any]:
    """The stored job as registration stores it today: the Connect hook's tasks and ports added."""
    injected = connect_hook.inject(job)
    return job if injected == job else spec.canonicalize(injected)


def _group(alloc: dict[str, Any]) -> dict[str, Any]:
    return next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])


def _missing_ports(alloc: dict[str, Any], taken: set[int]) -> list[dict[str, Any]]:
    """Host ports for the sidecar port labels the allocation has not been given."""
    have = {p["Label"] for p in ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []}
    missing = [p for p in connect_hook.extra_ports(alloc["Job"], _group(alloc)) if p["Label"] not in have]
    if not missing:
        return []
    return [{"Label": p["Label"], "Value": p["Value"], "To": p["To"], "HostIP": "127.0.0.1"}
            for p in ports.assign({"Networks": [{"DynamicPorts": missing}]}, taken)]


def inject_sidecars(txn: Txn) -> int:
    """Migration `inject-connect-sidecars`; returns how many documents it changed."""
    changed = 0
    for kind in ("job", "job_version"):
        for rec in txn.records(kind):
            job = with_sidecars(rec.value)
            if job != rec.value:
                txn.put(kind, rec.key, job)
                changed += 1
    allocs = [r.value for r in txn.records("alloc")]
    taken = set(planner.used_static_ports(allocs, set()))
    for alloc in allocs:
        job = with_sidecars(alloc["Job"])
        if job == alloc["Job"]:
            continue
        alloc = dict(alloc, Job=job)
        added = _missing_ports(alloc, taken) if alloc["ClientStatus"] in LIVE_CLIENT_STATUSES else []
        taken |= {p["Value"] for p in added}
        if added:
            res = dict(alloc.get("AllocatedResources") or {})
            shared = dict(res.get("Shared") or {})
            res["Shared"] = dict(shared, Ports=list(shared.get("Ports") or []) + added)
            alloc["AllocatedResources"] = res
        txn.put("alloc", alloc["ID"], alloc)
        changed += 1
    return changed


def namespace_job_keys(txn: Txn) -> int:
    """Migration `namespace-job-keys`; returns how many documents it moved."""
    moved = 0
    wanted = {
        "job": key_of_job,
        "job_version": lambda v: jobs.version_key(namespace_of(v), v["ID"], v["Version"]),
        jobs.SUBMISSION_KIND: lambda v: jobs.submission_key(namespace_of(v), v["JobID"], v["Version"]),
    }
    for kind, key_of in wanted.items():
        for rec in txn.records(kind):
            key = key_of(rec.value)
            if key != rec.key:
                txn.delete(kind, rec.key)
                txn.put(kind, key, rec.value)
                moved += 1
    return moved


MIGRATIONS: dict[str, Callable[[Txn], int]] = {INJECT_SIDECARS: inject_sidecars, NAMESPACE_JOB_KEYS: namespace_job_keys}


def migrate(state: State) -> list[str]:
    """Run, each in its own transaction, every migration the state has not recorded; returns them."""
    ran = []
    for name, migration in MIGRATIONS.items():
        with state.write() as txn:
            rec = txn.get("meta", META_KEY)
            done = list(rec.value) if rec else []
            if name in done:
                continue
            changed = migration(txn)
            txn.put("meta", META_KEY, [*done, name])
        log.info("migration %s: %d stored documents updated", name, changed)
        ran.append(name)
    return ran

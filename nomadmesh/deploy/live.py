"""Read what runs on the target, for plan, status and destroy."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import consul as consul_lib

from nomadmesh.deploy.drift import orphans, with_drift
from nomadmesh.deploy.entries import live_entry_changes
from nomadmesh.deploy.jobs import Rendered
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.plan import Plan, is_managed, plan

T = TypeVar("T")

REQUESTS_AT_ONCE = 8  # independent reads (parse, job, plan per job) in flight at a time: they overlap


def _each(names: Iterable[str], read: Callable[[str], T]) -> dict[str, T]:
    names = list(names)
    with ThreadPoolExecutor(max_workers=REQUESTS_AT_ONCE) as pool:
        return dict(zip(names, pool.map(read, names), strict=True))


def parsed_jobs(api: NomadAPI, rendered: Rendered) -> dict[str, dict[str, Any]]:
    """Each job file as the target's own /v1/jobs/parse reads it (with its variables): the Job registered."""
    src = rendered.sources
    return _each(src, lambda name: api.parse(src[name].hcl, src[name].var_file()))


def live_plan(api: NomadAPI, rendered: Rendered, consul: consul_lib.Consul | None = None,
              reset_overrides: bool = False) -> Plan:
    """The Plan for `rendered` against the live jobs of the same names (and, given `consul`, the
    project's config entries against Consul's). An unchanged definition whose live job Nomad's plan
    diff shows changed out of band (drift) is an update."""
    jobs = parsed_jobs(api, rendered)
    submissions = {name: src.submission() for name, src in rendered.sources.items()}
    p = plan(jobs, _each(rendered.order, api.job), rendered.order, submissions)
    noops = {c.name: c.job for c in p.changes if c.action == "noop"}
    p = with_drift(p, _each(noops, lambda name: api.plan(noops[name])))
    if consul is None:
        return p
    return replace(p, entries=live_entry_changes(consul, rendered.policy, reset_overrides),
                   project=rendered.policy.project)


def live_orphans(api: NomadAPI, rendered: Rendered) -> list[str]:
    """This project's running jobs no definition renders any more; none when only some services were selected."""
    return orphans(api.jobs(), rendered.sources, rendered.project) if rendered.complete else []


def nomad_plans(api: NomadAPI, p: Plan) -> dict[str, dict[str, Any]]:
    """Nomad's own dry run (diff + placements) for every job that would be registered."""
    return {c.name: api.plan(c.job) for c in p.changes if c.action in ("create", "update")}


def managed_jobs(api: NomadAPI) -> list[dict[str, Any]]:
    """Job stubs carrying nomadmesh's ownership meta, by name."""
    return sorted((j for j in api.jobs() if is_managed(j)), key=lambda j: j["ID"])

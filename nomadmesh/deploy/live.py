"""Read what runs on the target, for plan, status and destroy."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import consul as consul_lib

from nomadmesh.deploy.entries import live_entry_changes
from nomadmesh.deploy.jobs import Rendered
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.plan import Plan, is_managed, plan


def parsed_jobs(api: NomadAPI, rendered: Rendered) -> dict[str, dict[str, Any]]:
    """Each job file as the target's own /v1/jobs/parse reads it (with its variables): the Job registered."""
    return {name: api.parse(src.hcl, src.var_file()) for name, src in rendered.sources.items()}


def live_plan(api: NomadAPI, rendered: Rendered, consul: consul_lib.Consul | None = None,
              reset_overrides: bool = False) -> Plan:
    """The Plan for `rendered` against the live jobs of the same names (and, given `consul`, the
    project's config entries against Consul's)."""
    jobs = parsed_jobs(api, rendered)
    submissions = {name: src.submission() for name, src in rendered.sources.items()}
    p = plan(jobs, {name: api.job(name) for name in rendered.order}, rendered.order, submissions)
    if consul is None:
        return p
    return replace(p, entries=live_entry_changes(consul, rendered.policy, reset_overrides),
                   project=rendered.policy.project)


def nomad_plans(api: NomadAPI, p: Plan) -> dict[str, dict[str, Any]]:
    """Nomad's own dry run (diff + placements) for every job that would be registered."""
    return {c.name: api.plan(c.job) for c in p.changes if c.action in ("create", "update")}


def managed_jobs(api: NomadAPI) -> list[dict[str, Any]]:
    """Job stubs carrying nomadmesh's ownership meta, by name."""
    return sorted((j for j in api.jobs() if is_managed(j)), key=lambda j: j["ID"])

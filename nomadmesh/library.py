"""What the CLI does, callable from Python: load → render → plan → apply, then status and destroy.

Thin wrappers over the functions the CLI commands call, so a script and `nomadmesh deploy` behave
the same. Where to talk to: a `Target`; without one, the environment the HashiCorp CLIs read
(NOMAD_ADDR, CONSUL_HTTP_ADDR, tokens, TLS), like the CLI. Errors are `NomadMeshError`s
(SpecError, RenderError, TargetError...), never a half-applied change reported as success.

    spec = nomadmesh.load("services")
    files = nomadmesh.render(spec)                 # {"order.nomad.hcl": text, ...}
    p = nomadmesh.plan(spec)
    report = nomadmesh.apply(p)                    # report.ok: every job healthy
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nomadmesh.definitions import Spec, load_spec
from nomadmesh.deploy.apply import DeployReport, apply as apply_plan
from nomadmesh.deploy.destroy import destroy as deregister, select_jobs
from nomadmesh.deploy.entries import EntryWriter, deploy_lock
from nomadmesh.deploy.jobs import render_jobs
from nomadmesh.deploy.live import live_plan
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.plan import Plan
from nomadmesh.deploy.releases import record_deploy
from nomadmesh.deploy.status import JobStatus, collect_status
from nomadmesh.deploy.target import Target, consul_client, for_namespace, target_from_env
from nomadmesh.progress import Progress, SilentProgress


def load(services_dir: str | Path = "services", project_file: str | Path | None = None,
         allow_external: Sequence[str] = ()) -> Spec:
    """Read and validate the service definitions in `services_dir` (as `nomadmesh validate` does).

    `project_file` defaults to `<services_dir>/../nomadmesh.json`. Raises SpecError listing every
    problem found.
    """
    return load_spec(Path(services_dir), Path(project_file) if project_file is not None else None,
                     allow_external=tuple(allow_external))


def plan(spec: Spec, names: Sequence[str] = (), *, target: Target | None = None) -> Plan:
    """What `apply` would do for all services (or those named) against the target (`nomadmesh plan`).

    Reads only: each job file is parsed by the target and compared with the live job of that name,
    and the project's intentions and service-defaults with Consul's entries (`Plan.entries`).
    """
    rendered = render_jobs(spec, names)
    return live_plan(_api(target, rendered.namespace), rendered, _consul(target))


def apply(plan: Plan, *, target: Target | None = None, detach: bool = False, timeout_s: float = 300.0,
          progress: Progress | None = None, project: str | None = None) -> DeployReport:
    """Register the planned jobs in order and wait until healthy (`nomadmesh deploy`).

    A job changed on the target since `plan` is refused (Nomad's check-index), never overwritten.
    `detach=True` returns once registered. Pass the same `target` as to `plan`. The planned config
    entries are written first and stale allows removed last, under the project's deploy lock. The
    deploy is recorded as a release of `project` (default: the plan's project; the name `nomadmesh
    history` lists), as the CLI does.
    """
    # the planned jobs' namespace (nomadmesh.json), as `plan` read them
    api = _api(target, next((c.job.get("Namespace") or "default" for c in plan.changes), "default"))
    if not plan.project:  # a Plan made without Consul (deploy.plan.plan): jobs only
        report = apply_plan(api, plan, progress or SilentProgress(), detach=detach, timeout_s=timeout_s)
    else:
        consul = _consul(target)
        with deploy_lock(consul, plan.project):
            report = apply_plan(api, plan, progress or SilentProgress(), detach=detach, timeout_s=timeout_s,
                                entries=EntryWriter(consul, plan.project))
    name = project if project is not None else plan.project
    if name:
        record_deploy(api.target, name, plan, report)
    return report


def status(*, target: Target | None = None) -> list[JobStatus]:
    """Each job nomadmesh manages on the target: allocations, health, addresses (`nomadmesh status`)."""
    return collect_status(_api(target))


def destroy(names: Sequence[str] = (), *, target: Target | None = None, purge: bool = False) -> list[str]:
    """Stop the managed jobs named, or every managed job when none is named (`nomadmesh destroy --yes`).

    Jobs without nomadmesh's ownership meta are never stopped: naming one raises DeployError
    before anything is stopped. Returns the names stopped (purged with `purge=True`).
    """
    api = _api(target)
    return deregister(api, select_jobs(api.jobs(), names), purge, SilentProgress())


def _consul(target: Target | None) -> Any:
    return consul_client(target if target is not None else target_from_env(os.environ))


def _api(target: Target | None, namespace: str = "default") -> NomadAPI:
    return NomadAPI(for_namespace(target if target is not None else target_from_env(os.environ), namespace))

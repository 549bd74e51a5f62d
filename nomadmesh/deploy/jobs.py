"""Service definitions → the job files deploy submits, keyed by service name, in deploy order.

What is submitted is exactly what `render` writes (`jobs/<name>.nomad.hcl`): the HCL text plus the
values of its HCL2 variables, the way `nomad job run -var k=v file.nomad.hcl` submits a job.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Spec
from nomadmesh.deploy.order import deploy_order
from nomadmesh.errors import SpecError
from nomadmesh.mesh.policy import Desired, desired_policy, policy_problems
from nomadmesh.render.hcl import hcl_string
from nomadmesh.render.renderer import job_variables, render_hcl, select


@dataclass(frozen=True)
class JobSource:
    """One job file and its `-var` values: what /v1/jobs/parse reads and the register's Submission keeps."""

    hcl: str
    variables: Mapping[str, str] = field(default_factory=dict)

    def var_file(self) -> str:
        """The variable values as HCL var-file text: the form /v1/jobs/parse takes in `Variables`."""
        return "".join(f"{name} = {hcl_string(value)}\n" for name, value in sorted(self.variables.items()))

    def submission(self) -> dict[str, Any]:
        """Nomad's api.JobSubmission for this source, as `nomad job run -var ...` sends it."""
        return {"Source": self.hcl, "Format": "hcl2", "VariableFlags": dict(self.variables) or None,
                "Variables": ""}


@dataclass(frozen=True)
class Rendered:
    sources: dict[str, JobSource]  # service name → its job file, in deploy order
    order: tuple[str, ...]
    warnings: tuple[str, ...]
    policy: Desired = field(default_factory=lambda: Desired(""))  # the project's intentions and service-defaults
    project: str = "default"  # Project.name: the jobs' nomadmesh_project meta (orphans are this project's)
    complete: bool = True  # every service of the folder, not a selection: only then can orphans be told
    namespace: str = "default"  # Project.namespace: the Nomad namespace the jobs are in (nomadmesh.json)


def render_jobs(spec: Spec, names: Sequence[str] = ()) -> Rendered:
    """Pure: the selected services' job files in deploy order (upstreams first). Unknown names: RenderError."""
    problems = policy_problems(spec)
    if problems:
        raise SpecError(problems)
    services = {s.name: s for s in select(spec, names)}
    order, warnings = deploy_order({n: [u.destination_name for u in s.upstreams] for n, s in services.items()})
    sources = {n: JobSource(render_hcl(services[n], spec.project, spec.root), job_variables(services[n], spec.root))
               for n in order}
    return Rendered(sources, order, tuple(spec.warnings) + warnings, desired_policy(spec), spec.project.name,
                    not names, spec.project.namespace)


def load_jobs(services_dir: Path, project_file: Path | None = None, names: Sequence[str] = (),
              allow_external: Sequence[str] = (), env: str | None = None, variables: Sequence[str] = (),
              environ: Mapping[str, str] | None = None) -> Rendered:
    spec = load_spec(services_dir, project_file, allow_external=tuple(allow_external), env=env,
                     variables=variables, environ=environ)
    return render_jobs(spec, names)

"""Service definitions → the Job dicts deploy submits, keyed by service name, in deploy order."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nomadmesh.deploy.order import deploy_order
from nomadmesh.render import job_dict
from nomadmesh.render.renderer import require_builtin_pack, select
from nomadmesh.spec import load_spec
from nomadmesh.spec.model import Spec


@dataclass(frozen=True)
class Rendered:
    jobs: dict[str, dict[str, Any]]  # service name → Job, in deploy order
    order: tuple[str, ...]
    warnings: tuple[str, ...]


def render_jobs(spec: Spec, names: Sequence[str] = ()) -> Rendered:
    """Pure: the selected services' Jobs in deploy order (upstreams first). Unknown names: RenderError."""
    services = {s.name: s for s in select(spec, names)}
    order, warnings = deploy_order({n: [u.destination_name for u in s.upstreams] for n, s in services.items()})
    for service in services.values():
        require_builtin_pack(service, spec.project)  # deploy would otherwise ignore project templates
    jobs = {n: job_dict(services[n], spec.project) for n in order}
    return Rendered(jobs, order, tuple(spec.warnings) + warnings)


def load_jobs(services_dir: Path, project_file: Path | None = None, names: Sequence[str] = (),
              allow_external: Sequence[str] = ()) -> Rendered:
    spec = load_spec(services_dir, project_file, allow_external=tuple(allow_external))
    return render_jobs(spec, names)

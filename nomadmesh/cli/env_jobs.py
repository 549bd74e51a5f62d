"""`status --env` and `destroy --env`: the job names one environment's definitions give (a preview
environment's `name_suffix` included), so those commands touch exactly that environment."""
from __future__ import annotations

import os
from pathlib import Path


def env_job_names(services_dir: Path, project_file: Path | None, allow_external: tuple[str, ...],
                  env: str | None, var: tuple[str, ...]) -> set[str] | None:
    """None without --env (every managed job); else the environment's job names. Bad input: SpecError."""
    if env is None:
        return None
    from nomadmesh.definitions import load_spec

    spec = load_spec(services_dir, project_file, allow_external, env=env, variables=var, environ=os.environ)
    return {s.name for s in spec.services}

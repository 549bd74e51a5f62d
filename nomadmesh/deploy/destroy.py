"""Stop (optionally purge) the jobs nomadmesh manages, never anyone else's.

`select_jobs(live, names)` is pure: every live managed job when `names` is empty, else the named
ones; a named job that is missing or not managed is a DeployError and nothing is stopped.
`project_jobs(live, project, rendered)` is pure too: one project's jobs, its orphans included.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nomadmesh.deploy.errors import DeployError
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.plan import is_managed
from nomadmesh.progress import Progress
from nomadmesh.render.ownership import PROJECT_KEY


def select_jobs(live: Sequence[dict[str, Any]], names: Sequence[str] = ()) -> list[str]:
    by_name = {j["ID"]: j for j in live}
    if not names:
        return sorted(n for n, j in by_name.items() if is_managed(j) and not j.get("Stop"))
    problems = []
    for n in dict.fromkeys(names):
        if n not in by_name:
            problems.append(f"no job {n!r} on the target")
        elif not is_managed(by_name[n]):
            problems.append(f"job {n!r} is not managed by nomadmesh (no nomadmesh_managed meta); not stopping it")
    if problems:
        raise DeployError("; ".join(problems))
    return list(dict.fromkeys(names))


def project_jobs(live: Sequence[dict[str, Any]], project: str, rendered: Sequence[str]) -> list[str]:
    """The running managed jobs of `project` (its nomadmesh_project meta: orphans included), and the
    rendered names among jobs without that meta (deployed before nomadmesh wrote it). Never a job
    of another project."""
    names = set(rendered)

    def belongs(job: dict[str, Any]) -> bool:
        owner = (job.get("Meta") or {}).get(PROJECT_KEY)
        return owner == project if owner is not None else job["ID"] in names

    return sorted(j["ID"] for j in live if is_managed(j) and not j.get("Stop") and belongs(j))


def destroy(api: NomadAPI, names: Sequence[str], purge: bool, progress: Progress) -> list[str]:
    """Deregister the selected jobs (reverse deploy order is not needed: Nomad stops each on its own)."""
    stopped = []
    for name in names:
        progress.begin(name, "Purging" if purge else "Stopping")
        api.deregister(name, purge=purge)
        progress.end(name, "done")
        stopped.append(name)
    return stopped

"""Carry out a Plan: register changed jobs in order, then watch them all until each has a verdict.

    apply(api, plan, progress, detach=False, timeout_s=300) -> DeployReport

- conflicts (live jobs nomadmesh does not own) refuse the whole deploy before anything is sent;
- `noop` jobs are not registered again (no new job version);
- registration uses EnforceIndex with the JobModifyIndex the plan saw (0 = must be new), so a job
  changed meanwhile is refused and nothing after it is registered;
- the registered jobs are watched in parallel (they deploy in parallel on Nomad anyway); the first
  failure cancels the other watches (fail fast). Ctrl-C does the same and reports the state.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.deploy.difftext import placement_reason
from nomadmesh.deploy.entries import Applied, EntryWriter
from nomadmesh.deploy.errors import DeployError
from nomadmesh.deploy.nomad_api import EnforceIndexConflict, NomadAPI
from nomadmesh.deploy.plan import Plan
from nomadmesh.deploy.watch import JobResult, JobWatch
from nomadmesh.errors import TargetError
from nomadmesh.progress import Progress

Watch = tuple[str, str, str, "int | None", str]  # (job, action, eval id, version, deployment id)


@dataclass
class DeployReport:
    results: list[JobResult] = field(default_factory=list)
    interrupted: bool = False
    entries: list[Applied] = field(default_factory=list)  # config-entry writes done (or skipped, with why)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "interrupted": self.interrupted, "jobs": [r.to_dict() for r in self.results],
                "entries": [{**a.change.to_dict(), "applied": a.done, "note": a.note or None} for a in self.entries]}


def apply(
    api: NomadAPI, plan: Plan, progress: Progress, detach: bool = False, timeout_s: float = 300.0,
    entries: EntryWriter | None = None,
) -> DeployReport:
    if plan.conflicts:
        raise DeployError("; ".join(c.reason for c in plan.conflicts))
    report = DeployReport()
    deadline = time.monotonic() + timeout_s
    to_watch: list[Watch] = []
    try:
        # Safe order: service-defaults and allows exist before any job that needs them is registered;
        # allows nobody declares any more go only once the jobs that used them are updated and healthy.
        if entries is not None:
            report.entries += entries.write(plan.entries, progress)
        for change in plan.changes:
            if change.action == "noop":
                result, dep_id = _noop(api, change.name, change.live_version, progress)
                if dep_id and not detach:
                    to_watch.append((change.name, "noop", "", change.live_version, dep_id))
                else:
                    report.results.append(result)
                continue
            progress.begin(change.name, "Registering")
            started = time.monotonic()
            try:
                out = api.register(change.job, change.modify_index, change.submission)
            except TargetError as e:
                progress.end(change.name, "refused" if isinstance(e, EnforceIndexConflict) else "failed", ok=False)
                report.results.append(JobResult(change.name, change.action, False, error=str(e),
                                                seconds=time.monotonic() - started))
                return report
            live = api.job(change.name) or {}
            version = live.get("Version")
            progress.end(change.name, f"done (version {version})")
            to_watch.append((change.name, change.action, out.get("EvalID") or "", version, ""))
        if detach:
            report.results += [JobResult(j, a, True, v, deployment_status="registered") for j, a, _, v, _ in to_watch]
            if any(e.action == "delete" for e in plan.entries):  # removed only once the jobs are known healthy
                progress.note("Allows no upstream declares any more are kept until a deploy that waits (no --detach).")
            return report
        report.results += _watch_all(api, to_watch, progress, deadline, report)
        if entries is not None and report.ok:
            report.entries += entries.delete(plan.entries, progress)
    except KeyboardInterrupt:
        report.interrupted = True
        progress.note("Interrupted: stopped watching. Registered jobs keep deploying on Nomad; "
                      "`nomadmesh status` shows where they are.")
        if entries is not None:  # each entry written so far was printed as it landed
            progress.note("Config entries: those listed above are written; the next deploy converges the rest.")
    return report


def _watch_all(api: NomadAPI, to_watch: list[Watch], progress: Progress,
               deadline: float, report: DeployReport) -> list[JobResult]:
    if not to_watch:
        return []
    cancel = threading.Event()

    def one(job: str, action: str, eval_id: str, version: int | None, dep_id: str) -> JobResult:
        result = JobWatch(api, job, action, progress, deadline, cancel, version).run(eval_id, dep_id)
        if not result.ok:
            cancel.set()  # fail fast: the others stop at their next blocking-query wake-up
        return result

    pool = ThreadPoolExecutor(max_workers=len(to_watch), thread_name_prefix="watch")
    futures = [pool.submit(one, *w) for w in to_watch]
    try:
        # Wait in short slices so Ctrl-C reaches the main thread promptly.
        while not all(f.done() for f in futures):
            time.sleep(0.05)
    except KeyboardInterrupt:
        cancel.set()
        pool.shutdown(wait=True)
        report.results += [f.result() for f in futures]
        raise
    pool.shutdown(wait=True)
    return [f.result() for f in futures]


def _noop(api: NomadAPI, name: str, version: int | None, progress: Progress) -> tuple[JobResult, str]:
    """An unchanged job is not registered again, but its state still decides the verdict:
    a failed or never-placed job is not "deployed". Returns (result, deployment id to watch or "")."""
    progress.begin(name, "Checking")
    dep = api.latest_deployment(name).value or {}
    failed = [e for e in api.evaluations(name) if e.get("FailedTGAllocs") and e.get("JobModifyIndex", 0) >= 0]
    if failed and not any(a.get("ClientStatus") == "running" for a in api.allocations(name).value):
        group, metric = sorted(max(failed, key=lambda e: e.get("ModifyIndex", 0))["FailedTGAllocs"].items())[0]
        msg = f"unchanged, but task group {group!r} cannot be placed: {placement_reason(metric)}"
        progress.end(name, msg, ok=False)
        return JobResult(name, "noop", False, version, error=msg), ""
    if dep.get("JobVersion") == version and dep.get("Status") == "running":
        progress.end(name, f"unchanged (version {version}), deployment still running")
        return JobResult(name, "noop", True, version, dep.get("ID"), "running"), str(dep["ID"])
    if dep.get("JobVersion") == version and dep.get("Status") in ("failed", "cancelled"):
        msg = f"unchanged, but its deployment {dep.get('Status')}: {dep.get('StatusDescription', '')}".rstrip(": ")
        progress.end(name, msg, ok=False)
        return JobResult(name, "noop", False, version, dep.get("ID"), dep.get("Status"), error=msg), ""
    allocs = [a for a in api.allocations(name).value if a.get("DesiredStatus") == "run"]
    if not any(a.get("ClientStatus") == "running" for a in allocs):
        msg = "unchanged, but nothing of it is running (see `nomadmesh plan` / `status`)"
        progress.end(name, msg, ok=False)
        return JobResult(name, "noop", False, version, error=msg), ""
    progress.end(name, f"unchanged (version {version})")
    healthy = sum(1 for a in allocs if (a.get("DeploymentStatus") or {}).get("Healthy"))
    return JobResult(name, "noop", True, version, dep.get("ID"), dep.get("Status"), healthy, len(allocs)), ""

"""Follow one registered job to a verdict: its evaluation, then its deployment.

Blocking queries (`index`/`wait`) wake on every change; a short wait keeps a cancelled watch
(another job failed, Ctrl-C) from hanging on. Fails fast:
- the evaluation could not place a group → the scheduler's reason ("missing drivers");
- the deployment failed or has an unhealthy allocation → its description and the tail of the
  failing task's stderr (stdout when stderr is empty).
A deployment whose canaries are all placed and healthy and that waits for a manual promotion is done
for this run, as for `nomad job run`'s monitor: it would wait for a person otherwise. The result is
ok, status "running", with a note saying how to promote or abort it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from nomadmesh.deploy.difftext import placement_reason
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.progress import Progress

WAIT_S = 1.0  # blocking-query wait: how late a cancelled watch notices
TAIL_BYTES = 4096
TAIL_LINES = 15
EVAL_DONE = {"complete", "failed", "canceled", "cancelled"}
SIDECAR_PREFIX = "connect-proxy-"


@dataclass(frozen=True)
class JobResult:
    job: str
    action: str  # create | update | noop
    ok: bool
    version: int | None = None
    deployment_id: str | None = None
    deployment_status: str | None = None  # successful | failed | running | ... | None
    healthy: int = 0
    desired: int = 0
    seconds: float = 0.0
    error: str | None = None
    log_tail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "action": self.action, "ok": self.ok, "version": self.version,
                "deployment_id": self.deployment_id, "deployment_status": self.deployment_status,
                "healthy": self.healthy, "desired": self.desired, "seconds": round(self.seconds, 3),
                "error": self.error, "log_tail": self.log_tail}


class Cancelled(Exception):
    """The watch was told to stop (another job failed, or Ctrl-C)."""


def _sum_groups(dep: dict[str, Any]) -> tuple[int, int, int, int]:
    groups = (dep.get("TaskGroups") or {}).values()
    return (sum(g.get("PlacedAllocs", 0) for g in groups), sum(g.get("HealthyAllocs", 0) for g in groups),
            sum(g.get("UnhealthyAllocs", 0) for g in groups), sum(g.get("DesiredTotal", 0) for g in groups))


def awaits_promotion(dep: dict[str, Any]) -> bool:
    """Running, every group with canaries has them all healthy, and one of those waits for a manual
    promotion (auto_promote ones promote themselves: keep watching those). Pure."""
    if dep.get("Status") != "running":
        return False
    waiting = False
    for g in (dep.get("TaskGroups") or {}).values():
        want = int(g.get("DesiredCanaries") or 0)
        if not want or g.get("Promoted"):
            continue
        if len(g.get("PlacedCanaries") or []) < want or int(g.get("HealthyAllocs") or 0) < want:
            return False
        waiting = waiting or not g.get("AutoPromote")
    return waiting


def failing_task(allocs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(alloc id, task) most likely to explain a failure: failed tasks first, then restarts; the
    service's own task before its sidecar. Pure."""
    best: tuple[tuple[int, int, int, int], str, str] | None = None
    for a in allocs:
        unhealthy = (a.get("DeploymentStatus") or {}).get("Healthy") is False or a.get("ClientStatus") == "failed"
        for name, ts in (a.get("TaskStates") or {}).items():
            key = (int(bool(ts.get("Failed"))), int(unhealthy), int(ts.get("Restarts") or 0),
                   int(not name.startswith(SIDECAR_PREFIX)))
            if best is None or key > best[0]:
                best = (key, a["ID"], name)
    return (best[1], best[2]) if best else None


def log_tail(api: NomadAPI, alloc_id: str, task: str) -> str:
    for stream in ("stderr", "stdout"):
        try:
            text = api.logs(alloc_id, task, stream, tail_bytes=TAIL_BYTES)
        except Exception:  # the tail is a courtesy: never hide the real failure behind it
            continue
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines:
            return f"{task} {stream}:\n" + "\n".join(lines[-TAIL_LINES:])
    return ""


class JobWatch:
    def __init__(self, api: NomadAPI, job: str, action: str, progress: Progress, deadline: float,
                 cancel: threading.Event, version: int | None = None) -> None:
        self.api, self.job, self.action, self.progress = api, job, action, progress
        self.deadline, self.cancel, self.version = deadline, cancel, version
        self.started = time.monotonic()
        self.counts = (0, 0, 0, 0)

    def _wait_s(self) -> float:
        if self.cancel.is_set():
            raise Cancelled()
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        return max(0.05, min(WAIT_S, left))

    def _result(self, ok: bool, dep: dict[str, Any] | None = None, error: str | None = None,
                tail: str | None = None) -> JobResult:
        _, healthy, _, desired = self.counts
        return JobResult(self.job, self.action, ok, self.version, dep.get("ID") if dep else None,
                         dep.get("Status") if dep else None, healthy, desired, time.monotonic() - self.started,
                         error, tail)

    def run(self, eval_id: str, dep_id: str = "") -> JobResult:
        """Watch from the evaluation `eval_id`, or (when empty) straight from deployment `dep_id`."""
        self.progress.begin(self.job, "Waiting for")
        dep: dict[str, Any] | None = None
        try:
            if not eval_id:
                dep = self._deployment(dep_id)
                return self._verdict(dep)
            evaluation = self._evaluation(eval_id)
            failed = evaluation.get("FailedTGAllocs") or {}
            if failed:
                group, metric = sorted(failed.items())[0]
                msg = f"cannot place task group {group!r}: {placement_reason(metric)}"
                self.progress.end(self.job, f"failed: {msg}", ok=False)
                return self._result(False, error=msg)
            dep_id = evaluation.get("DeploymentID") or ""
            if not dep_id:
                self.progress.end(self.job, "placed (no deployment)")
                return self._result(True)
            dep = self._deployment(dep_id)
        except Cancelled:
            self.progress.end(self.job, "not watched further", ok=False)
            return self._result(False, dep, error="watch cancelled")
        except TimeoutError:
            msg = f"timed out after {time.monotonic() - self.started:.0f}s; Nomad keeps deploying it"
            self.progress.end(self.job, msg, ok=False)
            return self._result(False, dep, error=msg)
        return self._verdict(dep)

    def _verdict(self, dep: dict[str, Any]) -> JobResult:
        _placed, healthy, unhealthy, desired = self.counts
        if dep.get("Status") == "successful":
            self.progress.end(self.job, f"healthy ({healthy}/{desired}, {time.monotonic() - self.started:.1f}s)")
            return self._result(True, dep)
        if awaits_promotion(dep):
            self.progress.end(self.job, f"canaries healthy ({healthy}/{desired}); deployment requires promotion")
            self.progress.note(f"{self.job}: its canaries run beside the old version; `nomadmesh promote {self.job}` "
                               f"rolls the rest, `nomadmesh abort {self.job}` stops them (`nomadmesh release "
                               f"{self.job}` shifts traffic to them step by step and decides by itself)")
            return self._result(True, dep)
        reason = dep.get("StatusDescription") or f"deployment {dep.get('Status')}"
        if unhealthy and dep.get("Status") == "running":
            reason = f"{unhealthy} unhealthy allocation{'s' if unhealthy != 1 else ''}"
        tail = self._tail(dep)
        self.progress.end(self.job, f"failed: {reason}", ok=False)
        if tail:
            self.progress.note(tail)
        return self._result(False, dep, error=reason, tail=tail or None)

    def _evaluation(self, eval_id: str) -> dict[str, Any]:
        index = 0
        while True:
            got = self.api.evaluation(eval_id, index, self._wait_s())
            if got.value.get("Status") in EVAL_DONE:
                return got.value
            index = max(index, got.index)

    def _deployment(self, dep_id: str) -> dict[str, Any]:
        index = 0
        while True:
            got = self.api.deployment(dep_id, index, self._wait_s())
            dep: dict[str, Any] = got.value
            counts = _sum_groups(dep)
            if counts != self.counts:
                self.counts = counts
                self.progress.counts(self.job, *counts)
            # An unhealthy allocation dooms the deployment: stop now, not at the progress deadline.
            if dep.get("Status") != "running" or counts[2] > 0 or awaits_promotion(dep):
                return dep
            index = max(index, got.index)

    def _tail(self, dep: dict[str, Any]) -> str:
        def of_deployment(a: dict[str, Any]) -> bool:
            # Allocation stubs may lack DeploymentID; then the job version tells.
            if a.get("DeploymentID"):
                return bool(a["DeploymentID"] == dep["ID"])
            return a.get("JobVersion") == dep.get("JobVersion")

        try:
            allocs = [a for a in self.api.allocations(self.job).value if of_deployment(a)]
        except Exception:
            return ""
        pick = failing_task(allocs)
        return log_tail(self.api, *pick) if pick else ""

"""The release loop: check, put a 100%-stable split in place, register the new version so Nomad places
canaries, wait for them, shift traffic step by step, judge each step, then promote or roll back.

Order matters for traffic (why each step is where it is):
- the resolver (`stable`/`canary` subsets) and a splitter at 0% canary are written *before* the new
  version is registered: Consul's default resolver would otherwise hand a healthy canary its plain
  share of the instances the moment it registers, before anyone judged it;
- on success the splitter is deleted *before* the promotion: Nomad registers promoted canaries with
  the normal meta, so a `canary` subset would empty under a split still sending it traffic (Consul
  10857). Between the two, callers reach both versions, every instance healthy; then Nomad stops the
  old allocations (deregistered before they are stopped) and the resolver is restored;
- on failure (thresholds, no canary traffic, Ctrl-C) the splitter goes to 100% stable at once, the
  deployment is failed (Nomad stops the canaries; with auto_revert it registers the previous version
  again), and the release's entries are removed only once no canary is registered any more.

Every entry write is check-and-set: an `abort` or an operator's change makes the release stop and
say so instead of overwriting it; a `nomadmesh promote` meanwhile (splitter deleted, deployment
promoted) ends it as promoted, exit 0, once the deployment finished. `promote(...)` and `abort(...)`
are the same endings, on their own.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from nomadmesh.deploy.apply import apply
from nomadmesh.deploy.entries import EntryWriter
from nomadmesh.deploy.errors import DeployError
from nomadmesh.deploy.jobs import Rendered
from nomadmesh.deploy.live import live_plan
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.plan import Plan, is_managed
from nomadmesh.errors import NomadMeshError, TargetError
from nomadmesh.progress import Progress
from nomadmesh.release import entries as ent
from nomadmesh.release.decide import Figures, Verdict, decide
from nomadmesh.release.metrics import Counters, interval_figures
from nomadmesh.release.options import ReleaseOptions, ReleaseUsageError
from nomadmesh.release.target import L7_PROTOCOLS, ConsulSide, EntryChanged, deployment_summary
from nomadmesh.render.ownership import CANARY_META_KEY

POLL_S = 0.25
CHECK_S = 1.0  # how often the canary's figures are looked at within an interval
SETTLE_TIMEOUT_S = 120.0  # for the canaries to register or go, and a promoted deployment to finish
# `nomadmesh promote` deletes the splitter, then promotes: how long a release that finds its splitter
# gone waits to see whether a promotion follows before it takes the change for an abort.
PROMOTION_FOLLOWS_S = 30.0


class CounterReader(Protocol):
    """Where the sidecars' cumulative counters come from: the dev agent (ConsulSide) or Prometheus."""

    def read(self, sidecar_ids: tuple[str, ...]) -> dict[str, Counters]: ...


class ReleaseRefused(NomadMeshError):
    """The release cannot start in the target's current state; nothing was changed."""

    exit_code = 1


@dataclass(frozen=True)
class StepRecord:
    percent: int
    verdict: Verdict
    canary: Figures
    stable: Figures

    def to_dict(self) -> dict[str, Any]:
        return {"percent": self.percent, "verdict": self.verdict.action, "reason": self.verdict.reason,
                "canary": self.canary.to_dict(), "stable": self.stable.to_dict()}


@dataclass
class ReleaseReport:
    service: str
    release_id: str = ""
    outcome: str = ""  # promoted | rolled back | interrupted
    reason: str = ""
    tripped: tuple[str, ...] = ()
    deployment_id: str = ""
    version: int | None = None
    steps: list[StepRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures_from: str = "the sidecars' Envoy stats (dev agent)"

    @property
    def exit_code(self) -> int:
        return {"promoted": 0, "interrupted": 130}.get(self.outcome, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "release": self.release_id, "outcome": self.outcome, "ok": self.exit_code == 0,
                "reason": self.reason, "tripped": list(self.tripped), "deployment_id": self.deployment_id,
                "version": self.version, "steps": [s.to_dict() for s in self.steps], "notes": self.notes,
                "figures_from": self.figures_from}


@dataclass
class Ending:
    """What promote / roll back need: the service, its running deployment, the release's entries."""

    nomad: NomadAPI
    consul: ConsulSide
    service: str
    deployment_id: str
    progress: Progress
    sleep: Callable[[float], None] = time.sleep

    def _until(self, what: str, ready: Callable[[], bool], timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                self.progress.note(f"{self.service}: gave up waiting for {what} after {timeout_s:.0f}s")
                return False
            self.sleep(POLL_S)
        return True

    def split(self, percent: int, release_id: str, progress: dict[str, str] | None = None) -> None:
        """The release's splitter at `percent` to the canary (with `progress` in its Meta), CAS on the one it
        finds. A splitter that is gone or not this release's means someone ended it (`nomadmesh abort`):
        EntryChanged, nothing written."""
        self.consul.write(ent.splitter(self.service, percent, release_id, progress), self.own_splitter(release_id))

    def own_splitter(self, release_id: str) -> ent.Entry:
        """The release's splitter as stored; EntryChanged when it is gone or someone else's."""
        live = self.consul.entry(ent.SPLITTER, self.service)
        if live is None or ent.release_of(live) != release_id:
            raise EntryChanged(f"{ent.SPLITTER}/{self.service} is no longer release {release_id!r}'s "
                               f"({'deleted' if live is None else 'rewritten'} by someone else, e.g. `nomadmesh "
                               "abort`); left alone")
        return live

    def remove_entries(self) -> None:
        """Delete the release's splitter, then give back the resolver that was there before it."""
        splitter = self.consul.entry(ent.SPLITTER, self.service)
        if splitter is not None and ent.release_of(splitter):
            self.consul.delete(splitter)
        resolver = self.consul.entry(ent.RESOLVER, self.service)
        if resolver is not None and ent.release_of(resolver):
            before = ent.restored_resolver(resolver)
            if before is None:
                self.consul.delete(resolver)
            else:
                self.consul.write(before, resolver)

    def promote(self) -> str:
        """Splitter away, canaries promoted, deployment finished, resolver restored. Returns a note."""
        splitter = self.consul.entry(ent.SPLITTER, self.service)
        if splitter is not None and ent.release_of(splitter):
            self.consul.delete(splitter)
        self.progress.begin(self.service, "Promoting")
        self.nomad.promote(self.deployment_id)
        done = self._until("the deployment to finish", lambda: self._status() != "running")
        status = self._status()
        self.remove_entries()
        self.progress.end(self.service, f"deployment {status}", ok=status == "successful")
        return "" if done and status == "successful" else f"deployment {self.deployment_id[:8]} is {status}"

    def roll_back(self, release_id: str) -> str:
        """All traffic to stable at once, deployment failed, entries removed once the canaries are gone."""
        try:
            self.split(0, release_id)
        except EntryChanged as e:  # ended elsewhere already: fail what is still running, write nothing
            self.progress.note(str(e))
        self.progress.begin(self.service, "Rolling back")
        if self._status() == "running":
            self.nomad.fail_deployment(self.deployment_id)
        gone = self._until("the canaries to deregister", lambda: not self.consul.instances(self.service).canary)
        if not gone:
            self.progress.end(self.service, "traffic on stable; canaries still registered", ok=False)
            return (f"canaries of {self.service} are still registered: the splitter stays at 100% stable; "
                    f"`nomadmesh abort {self.service}` again removes it once they are gone")
        self.remove_entries()
        self.progress.end(self.service, "traffic on stable, canaries stopped")
        return ""

    def promoted_elsewhere(self) -> bool:
        """Whether someone else promoted the deployment (`nomadmesh promote`, `nomad deployment promote`)
        after the release's splitter changed under it. `nomadmesh promote` deletes the splitter before
        it promotes, so a running, unpromoted deployment is watched a little while for that."""
        def decided() -> bool:
            dep = self._deployment()
            return dep.get("Status") != "running" or promoted(dep)

        self._until("a promotion to follow the splitter's removal", decided, PROMOTION_FOLLOWS_S)
        return promoted(self._deployment())

    def await_promoted(self) -> str:
        """A deployment someone else promoted: wait for it to finish; their `promote` gives the
        entries back. Returns a note, as `promote` does."""
        self.progress.begin(self.service, "Promoted by someone else; finishing")
        done = self._until("the deployment to finish", lambda: self._status() != "running")
        status = self._status()
        self.progress.end(self.service, f"deployment {status}", ok=status == "successful")
        return "" if done and status == "successful" else f"deployment {self.deployment_id[:8]} is {status}"

    def _deployment(self) -> dict[str, Any]:
        return dict(self.nomad.deployment(self.deployment_id).value or {})

    def _status(self) -> str:
        return str(self._deployment().get("Status") or "")


def promoted(dep: dict[str, Any]) -> bool:
    """A deployment whose canaries were promoted (every canary group), or that succeeded."""
    groups = [g for g in (dep.get("TaskGroups") or {}).values() if int(g.get("DesiredCanaries") or 0)]
    return dep.get("Status") == "successful" or (bool(groups) and all(g.get("Promoted") for g in groups))


def _groups_canaries(job: dict[str, Any]) -> tuple[int, bool, bool]:
    """(canaries per update, every service marked in canary_meta, auto_revert) of a parsed job."""
    groups = job.get("TaskGroups") or []
    canaries = min((int((g.get("Update") or {}).get("Canary") or 0) for g in groups), default=0)
    services = [s for g in groups for s in (g.get("Services") or [])]
    marked = bool(services) and all((s.get("CanaryMeta") or {}).get(CANARY_META_KEY) == "true" for s in services)
    revert = all(bool((g.get("Update") or {}).get("AutoRevert")) for g in groups)
    return canaries, marked, revert


def check_can_release(nomad: NomadAPI, consul: ConsulSide, service: str, plan: Plan) -> None:
    """Refuse (nothing changed yet) what a release cannot do; ReleaseUsageError for a definition to fix."""
    where = f"services/{service}/service.json"
    protocol = consul.protocol(service)
    if protocol not in L7_PROTOCOLS:
        raise ReleaseUsageError(
            f"release: {service} speaks {protocol}: splitting traffic needs an L7 protocol; declare "
            f"\"protocol\": \"http\" in {where} (Consul's service-defaults) and deploy it first")
    change = plan.get(service)
    if change.action == "create" or change.live_version is None:
        raise ReleaseRefused(f"release: {service} does not run yet: `nomadmesh deploy {service}` first "
                             "(a release replaces a running version)")
    if change.action == "conflict":
        raise ReleaseRefused(f"release: {change.reason}")
    if change.action == "noop":
        raise ReleaseRefused(f"release: nothing to release: {service}'s definition is what runs (version "
                             f"{change.live_version}); change it (e.g. its env's VERSION) first")
    canaries, marked, _ = _groups_canaries(change.job)
    if canaries < 1:
        raise ReleaseUsageError(f"release: {service} places no canaries: declare \"update\": {{\"canary\": 1}} "
                                f"under \"nomad\" in {where}")
    if not marked:
        raise ReleaseUsageError(f"release: {service}'s canaries would not be told apart: its rendered service "
                                f"block has no canary_meta {{ {CANARY_META_KEY} = \"true\" }} (a template of "
                                "your own must render `v.canary_meta`, as the built-in _service.hcl.j2 does)")
    dep = nomad.latest_deployment(service).value or {}
    if dep.get("Status") in ("running", "paused", "pending", "blocked", "unblocking"):
        raise ReleaseRefused(f"release: a deployment of {service} is {dep['Status']} ({str(dep.get('ID'))[:8]}, "
                             f"version {dep.get('JobVersion')}): wait for it, or end it with "
                             f"`nomadmesh promote {service}` / `nomadmesh abort {service}`")
    splitter = consul.entry(ent.SPLITTER, service)
    if splitter is not None:
        owner = ent.release_of(splitter)
        raise ReleaseRefused(f"release: {service} already has a service-splitter"
                             + (f" from release {owner!r}: `nomadmesh abort {service}` removes it" if owner
                                else " of its own; a release writes its own split"))
    problem = ent.resolver_problem(consul.entry(ent.RESOLVER, service))
    if problem:
        raise ReleaseRefused(f"release: {service}: {problem}")


class Controller:
    def __init__(self, nomad: NomadAPI, consul: ConsulSide, entries: EntryWriter | None, progress: Progress,
                 options: ReleaseOptions, sleep: Callable[[float], None] = time.sleep,
                 counters: CounterReader | None = None, figures_from: str = "") -> None:
        self.nomad, self.consul, self.entries, self.progress = nomad, consul, entries, progress
        self.options, self.sleep = options, sleep
        self.counters: CounterReader = counters or consul  # --metrics-url: Prometheus instead of the agent
        self.figures_from = figures_from

    def run(self, rendered: Rendered, service: str) -> ReleaseReport:
        plan = live_plan(self.nomad, rendered, self.entries.consul if self.entries else None)
        check_can_release(self.nomad, self.consul, service, plan)
        change = plan.get(service)
        report = ReleaseReport(service, f"{service} v{int(change.live_version or 0) + 1}")
        if self.figures_from:
            report.figures_from = self.figures_from
        ending: Ending | None = None
        by_other = False  # promoted by someone else meanwhile
        try:
            self._prepare_split(service, report.release_id)
            result = apply(self.nomad, Plan((change,), plan.entries, plan.project), self.progress, detach=True,
                           entries=self.entries)
            if result.interrupted:  # apply swallows Ctrl-C to report; the release must still end
                raise KeyboardInterrupt
            if not result.ok:
                raise DeployError(next((r.error for r in result.results if r.error), "registration failed"))
            report.version = result.results[0].version
            dep_id = self._deployment_of(service, report.version)
            report.deployment_id = dep_id
            ending = Ending(self.nomad, self.consul, service, dep_id, self.progress, self.sleep)
            self._wait_canaries(ending)
            self._steps(ending, report)
        except KeyboardInterrupt:
            report.outcome, report.reason = "interrupted", "interrupted (Ctrl-C): traffic back on stable"
        except EntryChanged as e:  # its splitter deleted or rewritten: an `abort`, or a promotion by hand
            by_other = ending is not None and ending.promoted_elsewhere()
            report.outcome = "promoted" if by_other else "rolled back"
            report.reason = (f"promoted by someone else (`nomadmesh promote {service}` or Nomad's own promote) "
                             "while the release ran" if by_other else str(e))
        except (DeployError, TargetError, ReleaseRefused) as e:
            report.outcome, report.reason = "rolled back", str(e)
        if report.outcome == "promoted":
            assert ending is not None
            note = ending.await_promoted() if by_other else ending.promote()
        elif ending is not None:
            note = ending.roll_back(report.release_id)
        else:  # nothing was placed: only the entries written before the registration go
            Ending(self.nomad, self.consul, service, "", self.progress, self.sleep).remove_entries()
            note = ""
        if note:
            report.notes.append(note)
        if report.outcome != "promoted" and not _groups_canaries(change.job)[2]:
            report.notes.append(f"{service} has no update.auto_revert: Nomad keeps version {report.version} as the "
                                f"job's definition; `nomadmesh rollback` or a fixed definition and `deploy` replace it")
        return report

    def _prepare_split(self, service: str, release_id: str) -> None:
        live = self.consul.entry(ent.RESOLVER, service)
        self.consul.write(ent.release_resolver(service, live, release_id), live)
        self.consul.write(ent.splitter(service, 0, release_id), None)
        self.progress.note(f"{service}: resolver subsets stable/canary and a 100% stable split written")

    def _deployment_of(self, service: str, version: int | None) -> str:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            dep = self.nomad.latest_deployment(service).value or {}
            if dep.get("JobVersion") == version and dep.get("ID"):
                return str(dep["ID"])
            self.sleep(POLL_S)
        raise DeployError(f"Nomad made no deployment for {service} version {version}")

    def _wait_canaries(self, ending: Ending) -> None:
        service = ending.service
        self.progress.begin(service, "Placing canaries")
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        index = 0
        while True:
            got = self.nomad.deployment(ending.deployment_id, index, 1.0)
            dep, index = got.value, max(index, got.index)
            wanted, healthy, unhealthy = deployment_summary(dep)
            self.progress.counts(service, healthy, healthy, unhealthy, wanted)
            if dep.get("Status") not in ("running", "paused") or unhealthy:
                reason = dep.get("StatusDescription") or f"{unhealthy} unhealthy canaries"
                self.progress.end(service, f"failed: {reason}", ok=False)
                raise DeployError(f"canaries of {service} did not become healthy: {reason}")
            if wanted and healthy >= wanted and self.consul.instances(service).canary_passing >= wanted:
                self.progress.end(service, f"{healthy} canar{'y' if healthy == 1 else 'ies'} healthy")
                return
            if time.monotonic() > deadline:
                raise DeployError(f"canaries of {service} not healthy after {SETTLE_TIMEOUT_S:.0f}s")

    def _steps(self, ending: Ending, report: ReleaseReport) -> None:
        steps, t = self.options.steps, self.options.thresholds
        for n, percent in enumerate(steps):
            last = f"{report.steps[-1].percent}%: {report.steps[-1].verdict.reason}" if report.steps else ""
            ending.split(percent, report.release_id, ent.step_progress(steps, n, last))
            idle = 0
            while True:
                self.progress.begin(ending.service, f"{percent}% to canary:")
                found = self.consul.instances(ending.service)
                before_canary, before_stable = self.counters.read(found.canary), self.counters.read(found.stable)
                canary = self._interval(found.canary, before_canary, percent)
                ending.own_splitter(report.release_id)  # an `abort` meanwhile ends the release here
                stable = interval_figures(self.counters.read(found.stable), before_stable)
                verdict = decide(percent, n == len(steps) - 1, canary, t, idle)
                report.steps.append(StepRecord(percent, verdict, canary, stable))
                self.progress.end(ending.service, f"canary {canary.describe()} | stable {stable.describe()}",
                                  ok=verdict.action != "rollback")
                if verdict.action == "wait":
                    idle += 1
                    continue
                if verdict.action == "rollback":
                    report.outcome, report.reason, report.tripped = "rolled back", verdict.reason, verdict.tripped
                    return
                break
        report.outcome, report.reason = "promoted", report.steps[-1].verdict.reason

    def _interval(self, canary_ids: tuple[str, ...], before: dict[str, Counters], percent: int) -> Figures:
        """The canary's figures over one interval, looked at every CHECK_S on the way: a canary already
        beyond a threshold ends the interval at once (fail fast), rather than failing requests until
        the interval is over. Lack of traffic is only judged on whole intervals."""
        deadline = time.monotonic() + self.options.interval_s
        patient = replace(self.options.thresholds, max_idle_steps=sys.maxsize)
        while True:
            left = deadline - time.monotonic()
            self.sleep(max(0.0, min(CHECK_S, left)))
            figures = interval_figures(self.counters.read(canary_ids), before)
            if left <= CHECK_S or decide(percent, False, figures, patient).action == "rollback":
                return figures


def ending_for(nomad: NomadAPI, consul: ConsulSide, service: str, progress: Progress) -> tuple[Ending, str]:
    """The running release of `service` (for `promote` / `abort`): its deployment and release id."""
    job = nomad.job(service)
    if job is None or not is_managed(job):
        raise ReleaseRefused(f"no job {service!r} that nomadmesh manages")
    dep = nomad.latest_deployment(service).value or {}
    splitter = consul.entry(ent.SPLITTER, service)
    release_id = ent.release_of(splitter) or ent.release_of(consul.entry(ent.RESOLVER, service)) or ""
    if dep.get("Status") != "running" and not release_id:
        raise ReleaseRefused(f"{service} has no release under way (its latest deployment is "
                             f"{dep.get('Status') or 'none'} and no release's splitter is written)")
    return Ending(nomad, consul, service, str(dep.get("ID") or ""), progress), release_id or f"{service} manual"

"""Runs one allocation on this node: network, task dirs, task processes, Consul services, state.

The AllocRunner is the client half of Nomad for one allocation. It owns no policy: restarts follow
the task group's restart block inside the runtime's supervised process; what to run or stop is the
scheduler's call. Everything it learns (task events, network status, process identities for
adoption after an agent restart) is written to the allocation document in state.

All calls into nomadmesh.agent.runtime go through Platform (nomad/platform.py), except the pure
template parser and renderer, through nomad/task_templates.py.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import random
import shlex
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.nomad import connect_hook, host_volumes, snappy_block, task_plan, task_templates
from nomadmesh.agent.nomad.platform import ArtifactError, Platform, TaskSpec
from nomadmesh.agent.nomad.ports import container_port
from nomadmesh.agent.nomad.services import registrations
from nomadmesh.agent.nomad.structs import now_ns
from nomadmesh.durations import go_duration

__all__ = ["AllocRunner", "ClientActionError", "Platform"]

if TYPE_CHECKING:  # types only: every call into the runtime goes through Platform
    from nomadmesh.agent.runtime.events import TaskEvent
    from nomadmesh.agent.runtime.process import EventCallback, TaskProcess

log = logging.getLogger("nomadmesh.agent.runner")
MAX_EVENTS = 10  # Nomad keeps the last 10 task events
RETRY_FIRST_S = 0.1  # a task state write that failed (full disk) is retried after this...
RETRY_MAX_S = 5.0  # ...doubling up to this


def client_status(states: dict[str, dict[str, Any]]) -> str:
    """Nomad's getClientStatus: failed > running > pending > complete."""
    if not states:
        return "pending"
    kinds = [s.get("State") for s in states.values()]
    if any(s.get("State") == "dead" and s.get("Failed") for s in states.values()):
        return "failed"
    if "running" in kinds:
        return "running"
    if "pending" in kinds:
        return "pending"
    return "complete"


def _task_state() -> dict[str, Any]:
    return {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": None, "StartedAt": None,
            "FinishedAt": None, "Events": [], "TaskHandle": None}


def _apply_event(ts: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
    """Fold one task event into a TaskState, as Nomad's task runner does."""
    ts = dict(ts)
    kind = ev["Type"]
    if kind == "Started":
        ts.update(State="running", StartedAt=ev["Time"], FinishedAt=None)
    elif kind == "Restarting":
        ts.update(State="pending", Restarts=ts["Restarts"] + 1, LastRestart=ev["Time"])
    elif kind in ("Not Restarting",):
        ts.update(State="dead", Failed=True, FinishedAt=ev["Time"])
    elif kind == "Killed":
        ts.update(State="dead", FinishedAt=ev["Time"], Failed=ts["Failed"] or bool(ev.get("FailsTask")))
    elif kind == "Terminated" and ev.get("_final"):
        ts.update(State="dead", Failed=bool(ev.get("FailsTask")), FinishedAt=ev["Time"])
    elif kind in ("Setup Failure", "Driver Failure", "Failed Artifact Download", "Task hook failed"):
        ts.update(State="dead", Failed=True, FinishedAt=ev["Time"])
    public = {k: v for k, v in ev.items() if not k.startswith("_")}
    ts["Events"] = [*(ts.get("Events") or []), public][-MAX_EVENTS:]
    return ts


def event(kind: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"Type": kind, "Time": now_ns(), "Message": message, "DisplayMessage": message or kind,
            "Details": {}, "FailsTask": False, "RestartReason": "", "ExitCode": 0, "Signal": 0,
            "KillTimeout": 0, "KillError": "", "KillReason": "", "DriverError": "", "SetupError": "",
            **extra}


def _registration_key(alloc: dict[str, Any]) -> tuple[Any, bool]:
    """What an allocation's service registrations depend on besides its ports: its job version
    and whether it is a canary (canary_tags / canary_meta)."""
    return alloc.get("JobVersion"), bool((alloc.get("DeploymentStatus") or {}).get("Canary"))


class ClientActionError(Exception):
    """A client-side action (signal, restart) Nomad refuses; the text is Nomad's."""


def _multierror(errors: list[str]) -> str:
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} error{'s' if len(errors) != 1 else ''} occurred:\n\t{points}\n\n"


class AllocRunner:
    def __init__(self, ctx: AgentContext, platform: Platform, catalog: Catalog, xds_address: str, alloc_id: str,
                 notify: Callable[[], None]):
        self.ctx = ctx
        self.platform = platform
        self.catalog = catalog
        self.xds_address = xds_address
        self.alloc_id = alloc_id
        self.notify = notify
        self.stopping = False
        self.finished = False
        self._handles: dict[str, TaskProcess] = {}
        self._registered: list[str] = []
        self._version: tuple[Any, bool] | None = None  # what the services were registered for
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._shutting_down = False
        self._base: dict[str, tuple[int, list[dict[str, Any]]]] = {}  # restarts/events before a restore
        self._pending: dict[str, Callable[[], None]] = {}  # task -> its latest state write that failed
        self._retrier: threading.Thread | None = None
        self._stop_retrying = threading.Event()
        self._netns: str | None = None  # the allocation's network namespace (bridge mode)
        # task -> its templates that read KV keys or services, and its env before their variables (re-rendered
        # when those change)
        self._templates: dict[str, tuple[task_templates.TaskTemplates, dict[str, str]]] = {}
        self._template_watch: threading.Thread | None = None
        self._pending_changes: dict[str, list[dict[str, Any]]] = {}  # task -> templates waiting out their splay
        self._leader_dead = False  # the group's leader task died and its followers were killed
        self._delay_stop = threading.Event()  # set to cut shutdown delays short (the agent is leaving)

    # --- state helpers ------------------------------------------------------------------------

    def _alloc(self) -> dict[str, Any] | None:
        rec = self.ctx.state.get("alloc", self.alloc_id)
        return rec.value if rec else None

    def _update(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any] | None:
        # critical: what the allocation's tasks do is recorded even on a full disk (state.Reserve).
        with self.ctx.state.write(critical=True) as txn:
            rec = txn.get("alloc", self.alloc_id)
            if rec is None:
                return None
            doc = change(dict(rec.value))
            doc["ModifyIndex"] = txn.index
            doc["ModifyTime"] = now_ns()
            txn.put("alloc", self.alloc_id, doc)
            return doc

    def _record(self, task: str, ev: dict[str, Any]) -> None:
        """An event the runner itself raises (setup failure, found dead after an agent restart)."""
        def fold(ts: dict[str, Any] | None) -> dict[str, Any]:
            return _apply_event(ts or _task_state(), ev)
        self._write_or_retry(task, lambda: self._write_task(task, fold, ident=None))

    def _sync_task(self, task: str, ev: TaskEvent | None) -> None:
        """A runtime event: copy the supervised process's own TaskState into the allocation."""
        handle = self._handles.get(task)
        if handle is None:
            if ev is None:
                return  # a re-read of a task whose handle is gone (stopped meanwhile): nothing to copy
            def fold_event(ts: dict[str, Any] | None) -> dict[str, Any]:
                return _apply_event(ts or _task_state(), ev.to_nomad())
            self._write_or_retry(task, lambda: self._write_task(task, fold_event, ident=None))
            return
        # On a retry the process's state is read again: the latest one is what must be recorded.
        self._write_or_retry(task, lambda: self._write_synced(task, handle))
        if getattr(ev, "type", "") == "Terminated":
            # A task that ends for good without a further event (batch exit 0): look again shortly.
            threading.Thread(target=self._recheck, args=(task, handle), daemon=True).start()

    def _write_synced(self, task: str, handle: TaskProcess) -> None:
        fresh, ident = self.platform.task_state(handle)
        offset, earlier = self._base.get(task, (0, []))
        fresh = dict(fresh, Restarts=fresh["Restarts"] + offset, TaskHandle=None,
                     Events=(earlier + fresh["Events"])[-MAX_EVENTS:])
        self._write_task(task, lambda _ts: fresh, ident=ident)

    def _write_or_retry(self, task: str, write: Callable[[], None]) -> None:
        """Write a task's state now; if the state cannot take it (a full disk), keep retrying it.

        Called on the task's supervisor thread, which must never die of a write error: it still has
        to restart the task. The latest pending write per task wins; retries back off up to
        RETRY_MAX_S and stop once one succeeds or the allocation is stopped."""
        with self._lock:
            self._pending.pop(task, None)
        try:
            write()
        except Exception as e:
            log.warning("allocation %s: task %s: state not written (%s); retrying", self.alloc_id[:8], task, e)
            with self._lock:
                self._pending[task] = write
                if self._retrier is None:
                    self._retrier = threading.Thread(target=self._retry_pending, daemon=True,
                                                     name=f"alloc-{self.alloc_id[:8]}-retry")
                    self._retrier.start()

    def _retry_pending(self) -> None:
        delay = RETRY_FIRST_S
        while not self._stop_retrying.wait(delay):
            with self._lock:
                pending = dict(self._pending)
                self._pending.clear()
                if not pending:
                    self._retrier = None  # under the lock: a write failing now starts a new retrier
                    return
            failed: dict[str, Callable[[], None]] = {}
            for task, write in pending.items():
                try:
                    write()
                except Exception as e:
                    log.debug("allocation %s: task %s: retry failed: %s", self.alloc_id[:8], task, e)
                    failed[task] = write
            with self._lock:
                for task, write in failed.items():
                    self._pending.setdefault(task, write)  # a newer write queued meanwhile wins
                if not self._pending:
                    self._retrier = None
                    return
            delay = min(delay * 2, RETRY_MAX_S) if failed else RETRY_FIRST_S

    def _recheck(self, task: str, handle: TaskProcess) -> None:
        if self.platform.wait_task(handle, 2.0) and self._handles.get(task) is handle:
            self._sync_task(task, None)

    def _write_task(self, task: str, fold: Callable[[dict[str, Any] | None], dict[str, Any]],
                    ident: dict[str, Any] | None) -> None:
        if self._shutting_down:
            return  # the agent stops; the allocation stays as it was for the next agent to restart

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            states = dict(doc.get("TaskStates") or {})
            states[task] = fold(states.get(task))
            doc["TaskStates"] = states
            status = client_status(states)
            # While stopping, the allocation turns terminal only once its network and services
            # are gone too (stop() writes the final status), so "complete" means fully released.
            if not (self.stopping and status in ("complete", "failed")):
                doc["ClientStatus"] = status
            if ident is not None:
                doc["_Handles"] = dict(doc.get("_Handles") or {}, **{task: ident})
            return doc

        doc = self._update(change)
        if doc is None:
            return
        if doc["ClientStatus"] == "running" and not self.stopping:
            self._register_services(doc)
        if not self.stopping and self._claim_leader_death(doc):
            threading.Thread(target=self._kill_followers, daemon=True).start()
        if doc["ClientStatus"] in ("complete", "failed") and not self.stopping:
            threading.Thread(target=self._cleanup_after_exit, daemon=True).start()
        self.notify()

    # --- start / restore ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, kwargs={"restore": False},
                                        name=f"alloc-{self.alloc_id[:8]}", daemon=True)
        self._thread.start()

    def restore(self, start_dead: bool = True) -> None:
        """After an agent restart: adopt live tasks; restart (or fail) dead ones if `start_dead`."""
        self._run(restore=True, start_dead=start_dead)

    def _run(self, restore: bool, start_dead: bool = True) -> None:
        alloc = self._alloc()
        if alloc is None:
            return
        try:
            self._start_tasks(alloc, restore, start_dead)
        except Exception as e:  # a setup failure fails the allocation, never the agent
            log.exception("allocation %s failed to start", self.alloc_id)
            for task in self._group(alloc).get("Tasks") or []:
                self._record(task["Name"], event("Setup Failure", f"{type(e).__name__}: {e}", FailsTask=True,
                                                 SetupError=str(e)))
            # Bound now: `e` is unbound once the except block ends, and the closure must not depend on
            # `_update` calling it before then.
            description = f"setup failed: {e}"
            self._update(lambda d: dict(d, ClientDescription=description))

    def _claim_leader_death(self, doc: dict[str, Any]) -> bool:
        """True, once, when a `leader = true` task is dead (and did not fail) while others still run:
        Nomad then kills the rest of the group ("Leader Task Dead")."""
        states = doc.get("TaskStates") or {}
        tasks = self._group(doc).get("Tasks") or []
        leader_dead = any(t.get("Leader") and (states.get(t["Name"]) or {}).get("State") == "dead"
                          and not (states.get(t["Name"]) or {}).get("Failed") for t in tasks)
        others_live = any((states.get(t["Name"]) or {}).get("State") != "dead" for t in tasks if not t.get("Leader"))
        if not (leader_dead and others_live):
            return False
        with self._lock:
            if self._leader_dead:
                return False
            self._leader_dead = True
            return True

    def _kill_followers(self) -> None:
        with self._lock:
            live = {n: h for n, h in self._handles.items() if not self.platform.task_done(h)}
        for handle in live.values():
            self.platform.note_task_event(handle, "Leader Task Dead", "Leader Task in Group dead")
        threads = [threading.Thread(target=self._stop_task, args=(n, h)) for n, h in live.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _group(self, alloc: dict[str, Any]) -> dict[str, Any]:
        return next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])

    def _network_facts(self, alloc: dict[str, Any], restore: bool, start_dead: bool) -> task_plan.NetworkFacts:
        """What task_plan.network decides on; the namespace and the processes are looked at only
        for a restored bridge allocation whose namespace was set up once."""
        mode = ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Networks") or [{}]
        bridge = (mode[0] or {}).get("Mode") == "bridge"
        had_network = bool(alloc.get("NetworkStatus"))
        agent_stopped = bool(alloc.get("_AgentStopped"))
        looked_at = bridge and restore and had_network
        exists = looked_at and self.platform.network_path(self.alloc_id) is not None
        alive = looked_at and not agent_stopped and not exists and any(
            self.platform.task_alive(h) for h in (alloc.get("_Handles") or {}).values() if h)
        return task_plan.NetworkFacts(bridge=bridge, restore=restore, start_dead=start_dead, had_network=had_network,
                                      agent_stopped=agent_stopped, namespace_exists=exists, tasks_alive=alive)

    def _start_tasks(self, alloc: dict[str, Any], restore: bool, start_dead: bool = True) -> None:
        tg = self._group(alloc)
        # Sidecar tasks and ports are in the job since registration (or nomad/migrations.py).
        tasks = list(tg.get("Tasks") or [])
        self._version = _registration_key(alloc)
        ports = ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []
        netns = None
        action = task_plan.network(self._network_facts(alloc, restore, start_dead))
        if action is task_plan.Network.LOST:
            # Adopt its tasks (to stop them), start nothing; the scheduler's next tick fails the
            # allocation (network_lost).
            self._netns = self.platform.expected_network_path(self.alloc_id)
            start_dead = False
        elif action is task_plan.Network.KEEP:
            netns = self.platform.network_path(self.alloc_id)
            self._netns = netns
        elif action is task_plan.Network.SETUP:
            mappings = [(int(p["Value"]), container_port(p)) for p in ports]
            with self._lock:  # stop() waits for a setup under way, then tears it down
                if self.stopping:
                    return
                netns_path, ip = self.platform.setup_network(self.alloc_id, mappings)
                self._netns = netns = netns_path
            self._update(lambda d: dict(d, NetworkStatus={"InterfaceName": "eth0", "Address": ip,
                                                          "AddressIPv6": "", "DNS": None}))
        alloc_dir = self.platform.make_dirs(self.alloc_id, [t["Name"] for t in tasks])
        handles = alloc.get("_Handles") or {}
        agent_stopped = bool(alloc.get("_AgentStopped"))
        if agent_stopped:
            self._update(lambda d: {k: v for k, v in d.items() if k != "_AgentStopped"})
        for task in task_plan.start_order(tasks):
            if self.stopping:
                return
            name = task["Name"]
            spec = self._task_spec(alloc, tg, task, alloc_dir, netns)
            try:  # Nomad's volume hook, the first of the prestart hooks that can fail the task here
                spec = dataclasses.replace(spec, mounts=host_volumes.task_mounts(
                    tg, task, self.ctx.config.host_volumes, os.path.join(alloc_dir, name)))
            except host_volumes.VolumeError as e:
                if not (restore and handles.get(name)):  # an adopted task keeps the mounts it has
                    self._record(name, event("Task hook failed", f"volumes: {e}", FailsTask=True))
                    continue
            self._write_proxy_bootstrap(alloc, task, alloc_dir)
            self._write_dispatch_payload(alloc, task, alloc_dir)
            prev = (alloc.get("TaskStates") or {}).get(name) or {}
            if restore and name in handles and handles[name]:
                started = max((int(e.get("Time") or 0) for e in prev.get("Events") or []
                               if e.get("Type") == "Started"), default=None)
                h = self.platform.adopt_task(spec, handles[name], self._on_event(name),
                                             restarts=int(prev.get("Restarts") or 0), started_at_ns=started)
                if h is not None:
                    log.info("allocation %s: adopted task %s (pid %s)", self.alloc_id[:8], name, handles[name]["Pid"])
                    self._base[name] = (0, list(prev.get("Events") or []))
                    self._handles[name] = h
                    self._sync_task(name, None)
                    if task.get("Templates"):
                        self._resume_templates(task, alloc_dir, spec)
                    continue
            allowed = bool(restore and prev and not agent_stopped and self.platform.restart_allowed(spec, prev))
            todo = task_plan.step(restore, start_dead, agent_stopped, bool(prev), allowed)
            if todo is task_plan.Step.SKIP:
                continue  # an allocation being stopped: adopt what lives (to stop it), start nothing
            if todo is task_plan.Step.GIVE_UP:
                self._record(name, event("Not Restarting", "Exceeded allowed attempts while the agent was down",
                                         FailsTask=True))
                continue
            if todo is task_plan.Step.RESTART:
                self._record(name, event("Restarting", "Task found dead after agent restart"))
                prev = (self._alloc() or {}).get("TaskStates", {}).get(name) or prev
            if todo in (task_plan.Step.RESTART, task_plan.Step.RESUME):
                self._base[name] = (int(prev.get("Restarts") or 0), list(prev.get("Events") or []))
            if task.get("Artifacts") and not self._fetch_artifacts(task, alloc_dir, spec):
                continue  # "Failed Artifact Download" is recorded
            if task.get("Templates"):
                outcome, rendered = self._render_templates(task, alloc_dir, spec, wait=not restore)
                if outcome == "stopped":
                    return
                if outcome == "failed":
                    continue  # "Template failed" is recorded
                if outcome == "waiting":
                    # After an agent restart: a missing key must not hold the agent's own start.
                    threading.Thread(target=self._launch_when_rendered, args=(task, alloc_dir, spec),
                                     name=f"templates-wait-{self.alloc_id[:8]}", daemon=True).start()
                    continue
                spec = dataclasses.replace(spec, env={**spec.env, **rendered})
            if not self._launch(task, spec):
                return


        if restore:
            cur = self._alloc()
            if cur is not None and cur["ClientStatus"] == "running":
                self._register_services(cur)

    def _fetch_artifacts(self, task: dict[str, Any], alloc_dir: str, spec: TaskSpec) -> bool:
        """Nomad's artifact hook, before templates and the start: False (the task failed) on an error."""
        try:
            self.platform.fetch_artifacts(alloc_dir, task, spec.env)
        except ArtifactError as e:
            log.warning("allocation %s: task %s: artifact: %s", self.alloc_id[:8], task["Name"], e)
            self._record(task["Name"], event("Failed Artifact Download", str(e), FailsTask=True,
                                             DownloadError=str(e)))
            return False
        return True

    def _launch(self, task: dict[str, Any], spec: TaskSpec) -> bool:
        """Start the task's process (and wait for a prestart task to finish); False when the
        allocation is stopping."""
        name = task["Name"]
        with self._lock:
            if self.stopping:
                return False
            handle = self.platform.start_task(spec, self._on_event(name))
            self._handles[name] = handle
        try:
            handle.start()
        except OSError as e:
            self._handles.pop(name, None)
            self._record(name, event("Driver Failure", f"failed to launch command: {e}", FailsTask=True,
                                     DriverError=str(e)))
            return True
        if task_plan.waits_for_exit(task):
            self.platform.wait_task(self._handles[name])
        return True

    def _launch_when_rendered(self, task: dict[str, Any], alloc_dir: str, spec: TaskSpec) -> None:
        outcome, rendered = self._render_templates(task, alloc_dir, spec, wait=True)
        if outcome == "ok":
            self._launch(task, dataclasses.replace(spec, env={**spec.env, **rendered}))

    def _render_templates(self, task: dict[str, Any], alloc_dir: str, spec: TaskSpec,
                          wait: bool = True) -> tuple[str, dict[str, str]]:
        """Render the task's templates before it starts, waiting for missing KV keys (as Nomad's
        template hook blocks the task) unless not `wait`. ("ok", the `env = true` variables);
        ("failed", {}) when the task failed (recorded as Nomad does: Killing "Template failed: ...",
        then Killed); ("stopped", {}) when the allocation stopped; ("waiting", {}) when a key is
        missing and not `wait`."""
        name = task["Name"]
        templates = task_templates.TaskTemplates(task, alloc_dir, lambda v: self.platform.interpolate(v, spec.env))
        try:
            env = templates.first_render(
                self.ctx.state, spec.env, lambda: self.stopping or not wait,
                lambda message: self._record(name, event(task_templates.MISSING_EVENT, message)),
                self._services())
        except (task_templates.TemplateError, OSError) as e:
            message = f"Template failed: {e}"
            self._record(name, event("Killing", message, FailsTask=True))
            self._record(name, event("Killed", "Task successfully killed", FailsTask=True))
            return "failed", {}
        if env is None:
            return ("stopped" if self.stopping else "waiting"), {}
        earlier = (((self._alloc() or {}).get("TaskStates") or {}).get(name) or {}).get("Events") or []
        if earlier and name not in self._base:
            self._base[name] = (0, list(earlier))  # the "Missing: ..." events stay before the process's own
        if templates.watched():
            self._templates[name] = (templates, dict(spec.env))
            self._watch_templates()
        return "ok", env

    def _resume_templates(self, task: dict[str, Any], alloc_dir: str, spec: TaskSpec) -> None:
        """An adopted task's templates: render once more (KV may have changed while the agent was
        down: then its change_mode applies now, as Nomad's template hook does on restore) and watch."""
        name = task["Name"]
        templates = task_templates.TaskTemplates(task, alloc_dir, lambda v: self.platform.interpolate(v, spec.env))
        try:
            if not templates.watched():
                return
            changed = templates.rerender(self.ctx.state, spec.env, self._services())
        except (task_templates.TemplateError, OSError) as e:
            log.warning("allocation %s: re-rendering the templates of %s: %s", self.alloc_id[:8], name, e)
            return
        self._templates[name] = (templates, dict(spec.env))
        if changed:
            self._on_rerender(name, templates, dict(spec.env), changed)
        self._watch_templates()

    def _services(self) -> task_templates.CatalogLookups:
        return task_templates.catalog_lookups(
            lambda name, connect: self.catalog.health(name, passing_only=True, connect=connect))

    def _watch_templates(self) -> None:
        with self._lock:
            if self._template_watch is None:
                self._template_watch = threading.Thread(target=self._template_loop, daemon=True,
                                                        name=f"templates-{self.alloc_id[:8]}")
                self._template_watch.start()

    def _join_template_watch(self) -> None:
        """Once `stopping` is set, the watch ends within its poll; wait for it (it reads the state)."""
        watch = self._template_watch
        if watch is not None and watch is not threading.current_thread():
            watch.join(timeout=5)

    def _template_loop(self, poll_s: float = 1.0) -> None:
        """Re-render on every KV, variable or catalog change, then apply each changed template's
        change_mode, as consul-template's watch in Nomad's template hook does."""
        state = self.ctx.state
        index = state.kind_index(*task_templates.WATCHED_KINDS)
        while not self.stopping and not self.finished:
            try:
                now = state.wait(task_templates.WATCHED_KINDS, index, poll_s)
            except Exception:  # the agent closed its state under us: it is shutting down
                return
            if now == index:
                continue
            index = now
            for name, (templates, env) in list(self._templates.items()):
                try:
                    changed = templates.rerender(state, env, self._services())
                    if changed:
                        self._on_rerender(name, templates, env, changed)
                except Exception:  # a failed re-render leaves the task as it is; the next change retries
                    log.exception("allocation %s: re-rendering the templates of %s", self.alloc_id[:8], name)

    def _on_rerender(self, name: str, templates: task_templates.TaskTemplates, env: dict[str, str],
                     changed: list[dict[str, Any]]) -> None:
        acting = [t for t in changed if (t.get("ChangeMode") or "restart") in ("restart", "signal")]
        if not acting or self.stopping:
            return
        # Nomad waits a random time up to the largest splay first, so that many tasks re-rendered by
        # one change do not all restart at once (the template's `splay`, 5 s by default). Each task
        # waits on its own, as each has its own template manager in Nomad; renders during the wait
        # join the pending change.
        splay_ns = max(int(t.get("Splay") or 0) for t in acting)
        if splay_ns <= 0:
            self._apply_change_mode(name, templates, env, acting)
            return
        with self._lock:
            if name in self._pending_changes:
                self._pending_changes[name].extend(acting)
                return
            self._pending_changes[name] = list(acting)
        threading.Thread(target=self._after_splay, args=(name, templates, env, random.randrange(splay_ns) / 1e9),
                         name=f"splay-{self.alloc_id[:8]}-{name}", daemon=True).start()

    def _after_splay(self, name: str, templates: task_templates.TaskTemplates, env: dict[str, str],
                     delay_s: float) -> None:
        deadline = time.monotonic() + delay_s
        while not self.stopping and time.monotonic() < deadline:  # a stop ends the wait (Nomad's shutdownCh)
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        with self._lock:
            acting = self._pending_changes.pop(name, [])
        if not self.stopping:
            self._apply_change_mode(name, templates, env, acting)

    def _apply_change_mode(self, name: str, templates: task_templates.TaskTemplates, env: dict[str, str],
                           acting: list[dict[str, Any]]) -> None:
        handle = self._handles.get(name)
        if handle is None or self.stopping:
            return
        if any((t.get("ChangeMode") or "restart") == "restart" for t in acting):
            self.platform.restart_task(handle, "Template with change_mode restart re-rendered",
                                       {**env, **templates.env_vars()})
            return
        for sig in dict.fromkeys(t.get("ChangeSignal") or "SIGHUP" for t in acting):
            self.platform.signal_task(handle, sig, "Template re-rendered")

    def _write_proxy_bootstrap(self, alloc: dict[str, Any], task: dict[str, Any], alloc_dir: str) -> None:
        """An Envoy sidecar task gets its bootstrap in its secrets dir before it starts."""
        boot = connect_hook.bootstrap_for(alloc, task, self.xds_address)
        if boot is None:
            return
        path = os.path.join(alloc_dir, task["Name"], "secrets", connect_hook.BOOTSTRAP_FILE)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(boot, f, indent=2)

    def _write_dispatch_payload(self, alloc: dict[str, Any], task: dict[str, Any], alloc_dir: str) -> None:
        """A dispatched job's payload, decompressed, to the task's `dispatch_payload` file under
        local/ before it starts (Nomad's dispatch hook; nothing when there is no payload)."""
        target = (task.get("DispatchPayload") or {}).get("File")
        payload = alloc["Job"].get("Payload")
        if not target or not payload:
            return
        data = snappy_block.decompress(base64.b64decode(payload))
        if not data:
            return
        path = os.path.join(alloc_dir, task["Name"], "local", target)  # validated not to escape
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def _on_event(self, task: str) -> EventCallback:
        return lambda _name, ev: self._sync_task(task, ev)

    def _task_spec(self, alloc: dict[str, Any], tg: dict[str, Any], task: dict[str, Any], alloc_dir: str,
                   netns: str | None) -> TaskSpec:
        env = self.platform.task_env(alloc, tg, task, alloc_dir)
        cfg = task.get("Config") or {}
        command = self.platform.interpolate(str(cfg.get("command") or ""), env)
        if not command:
            raise ValueError(f"task {task['Name']!r}: config.command is required")
        args = cfg.get("args") or []
        if isinstance(args, str):
            args = shlex.split(args)
        argv = [command] + [self.platform.interpolate(str(a), env) for a in args]
        return TaskSpec(
            alloc_id=self.alloc_id, alloc_dir=alloc_dir, name=task["Name"], driver=task["Driver"],
            argv=argv, env=env, work_dir=self.platform.interpolate(str(cfg.get("work_dir") or ""), env),
            netns=netns, restart=tg.get("RestartPolicy") or task.get("RestartPolicy") or {},
            kill_signal=task.get("KillSignal") or "SIGINT",
            kill_timeout_s=(task.get("KillTimeout") or 5_000_000_000) / 1e9,
            user=task.get("User") or "", job_type=alloc["Job"].get("Type") or "service",
        )

    # --- services -----------------------------------------------------------------------------

    def _register_services(self, alloc: dict[str, Any]) -> None:
        catalog = self.catalog
        with self._lock:
            if (self._registered and self._version == _registration_key(alloc)):
                return
            self._version = _registration_key(alloc)
            try:
                regs = registrations(alloc)
            except ValueError as e:
                log.warning("allocation %s: cannot register services: %s", self.alloc_id[:8], e)
                return
            registered: list[str] = []
            for reg in regs:
                registered += catalog.register_service(reg)
            # Make before break: a registration replaces its service and sidecar in place; only IDs no
            # registration gives any more go, afterwards. (A sidecar deregistered first, even for one
            # commit, left a promoted canary's callers with an empty cluster: "no healthy upstream".)
            for sid in [s for s in self._registered if s not in registered]:
                catalog.deregister_service(sid)
            self._registered = registered

    def _deregister_services(self) -> None:
        catalog = self.catalog
        with self._lock:
            ids, self._registered = self._registered, []
        alloc = self._alloc()
        if alloc is not None:
            try:
                ids = list(dict.fromkeys(ids + [r["ID"] for r in registrations(alloc)]))
            except ValueError:
                pass
        for sid in ids:
            try:
                catalog.deregister_service(sid)
            except Exception:
                log.exception("deregistering %s", sid)

    def refresh(self, alloc: dict[str, Any]) -> None:
        """An in-place update changed the allocation's job, or a promotion made the canary a normal
        allocation: re-register its services."""
        if _registration_key(alloc) != self._version and alloc["ClientStatus"] == "running" and not self.stopping:
            self._register_services(alloc)

    # --- client actions (`nomad alloc signal` / `nomad alloc restart`) ---------------------------

    def _live_handle(self, name: str) -> TaskProcess | None:
        handle = self._handles.get(name)
        return None if handle is None or self.platform.task_done(handle) else handle

    def signal(self, task: str, signal_name: str) -> None:
        """Send `signal_name` to one task, or to every task when `task` is empty (Nomad's
        allocRunner.Signal); raises ClientActionError with Nomad's text."""
        alloc = self._alloc()
        names = [t["Name"] for t in self._group(alloc).get("Tasks") or []] if alloc else []
        if task and task not in names:
            raise ClientActionError("Task not found")
        # raw_exec sends SIGINT for a name it does not know (and logs a warning), so does the agent
        sig = signal_name if signal_name in signal.Signals.__members__ else "SIGINT"
        errors = []
        for name in [task] if task else names:
            handle = self._live_handle(name)
            if handle is None:
                errors.append((name, "Task not running"))
                continue
            self.platform.signal_task(handle, sig, f"Task being sent signal {sig}")
        if task and errors:
            raise ClientActionError(errors[0][1])
        if errors:
            raise ClientActionError(_multierror([f"Failed to signal task: {n}, err: {e}" for n, e in errors]))

    def restart(self, task: str, all_tasks: bool) -> None:
        """Restart one task, the running tasks, or all tasks at once, outside their restart policy
        (Nomad's Client.RestartAllocation); raises ClientActionError with Nomad's text."""
        if all_tasks and task:
            raise ClientActionError("task name cannot be set when restarting all tasks")
        alloc = self._alloc()
        names = [t["Name"] for t in self._group(alloc).get("Tasks") or []] if alloc else []
        if task:
            if task not in names:
                raise ClientActionError(f"Could not find task runner for task: {task}")
            handle = self._live_handle(task)
            if handle is None or not self.platform.restart_task(handle, "User requested task to restart"):
                raise ClientActionError("Task not running")
            return
        if alloc is None or self.stopping or alloc["DesiredStatus"] != "run":
            raise ClientActionError("restart of an alloc that should not run")
        live = {n: h for n in names if (h := self._live_handle(n)) is not None}
        if all_tasks and len(live) < len(names):
            # Nomad starts dead tasks again in lifecycle order; this agent's runner cannot yet, so it
            # refuses rather than restart only some of them
            dead = sorted(set(names) - set(live))
            raise ClientActionError(f"restarting dead tasks ({', '.join(dead)}) is not supported by the dev agent")
        reason = "User requested all tasks to restart" if all_tasks else "User requested running tasks to restart"
        for handle in live.values():
            self.platform.restart_task(handle, reason)

    # --- stop ---------------------------------------------------------------------------------

    def _cleanup_after_exit(self) -> None:
        """Every task ended on its own (failed or completed): release services and network."""
        with self._lock:
            if self.finished or self.stopping:
                return
            if any(not self.platform.task_done(h) for h in self._handles.values()):
                return
            self.finished = True
        self._deregister_services()
        self.platform.teardown_network(self.alloc_id)

    def network_lost(self) -> bool:
        """True when the allocation's network namespace vanished under running tasks (`ip netns
        del`): they and their sidecar would go on serving, cut off from the bridge and the mesh."""
        return self._netns is not None and not self.stopping and not self.finished \
            and not os.path.exists(self._netns)

    def claim_network_lost(self) -> bool:
        """network_lost(), and if so mark the runner stopping so only one caller fails it."""
        if not self.network_lost():
            return False  # the common case, without waiting for a setup that holds the lock
        with self._lock:
            if not self.network_lost():
                return False
            self.stopping = True
            return True

    def fail_network_lost(self) -> None:
        """Stop every task (the Envoy too) and fail the allocation, saying why on each task, so the
        reschedule policy replaces it."""
        name = os.path.basename(self._netns or "")
        why = f"network namespace {name} was deleted; task killed"
        log.warning("allocation %s: %s", self.alloc_id[:8], why)
        self.stop(final_status="failed", kill_event=event("Killed", why, FailsTask=True,
                                                          KillReason="network namespace deleted"))

    def stop(self, final_status: str | None = "complete", kill_event: dict[str, Any] | None = None,
             shutdown_delay: bool = True) -> None:
        """Stop every task (kill_signal, then SIGKILL after kill_timeout), services and network.

        final_status None: the agent is shutting down; the allocation stays desired-running and is
        started again by the next agent (marked _AgentStopped so that is not counted as a restart).
        kill_event: recorded on every task instead of "Task successfully killed" (why it was killed).
        shutdown_delay False: kill without waiting the job's shutdown_delay (a stop the agent resumes).
        """
        if final_status is None:
            self._delay_stop.set()  # a stop already waiting out a shutdown_delay ends it now
            self._update(lambda d: dict(d, _AgentStopped=True))
        with self._lock:
            self.stopping = True
            self._shutting_down = final_status is None
            handles = dict(self._handles)
        self._deregister_services()
        # Nomad's shutdown_delay: services are gone from the catalog first, then the group's delay,
        # then each task its own, so clients stop picking this allocation before its tasks are
        # signalled. An agent shutting down (tasks left for the next agent) or a lost network waits not.
        waits = shutdown_delay and final_status is not None and kill_event is None
        delays = self._shutdown_delays() if waits else {}
        if delays.get(""):
            self._delay_stop.wait(delays[""] / 1e9)
        threads = [threading.Thread(target=self._stop_task, args=(n, h, delays.get(n, 0)))
                   for n, h in handles.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self._join_template_watch()
        self.platform.teardown_network(self.alloc_id)
        self.finished = True
        self._stop_retrying.set()  # the final write below supersedes any task state still pending
        with self._lock:
            self._pending.clear()
        if final_status is not None:
            def change(doc: dict[str, Any]) -> dict[str, Any]:
                states = {}
                for name, ts in (doc.get("TaskStates") or {}).items():
                    ts = dict(ts)
                    if kill_event is not None:
                        ts = _apply_event(ts, kill_event)
                    elif ts.get("State") != "dead":
                        ts = _apply_event(ts, event("Killed", "Task successfully killed"))
                    states[name] = ts
                failed = doc["ClientStatus"] == "failed" or any(ts.get("Failed") for ts in states.values())
                extra = {"ClientDescription": kill_event["Message"]} if kill_event is not None else {}
                return dict(doc, TaskStates=states, ClientStatus="failed" if failed else final_status, **extra)
            self._update(change)
        self.notify()

    def _shutdown_delays(self) -> dict[str, int]:
        """{"": the group's shutdown_delay, task name: the task's} in ns, from the allocation's job.

        The Connect sidecar's injected 5 s is not waited: its Envoy runs with a drain time of 0
        (README: architecture), so there is nothing in flight for the delay to let finish."""
        alloc = self._alloc()
        if alloc is None:
            return {}
        tg = self._group(alloc)
        delays = {"": int(tg.get("ShutdownDelay") or 0)}
        for task in tg.get("Tasks") or []:
            delay = int(task.get("ShutdownDelay") or 0)
            kind = str(task.get("Kind") or "")
            injected = kind.startswith("connect-proxy:") and delay == connect_hook.SHUTDOWN_DELAY_NS
            delays[task["Name"]] = 0 if injected else delay
        return delays

    def _stop_task(self, name: str, handle: TaskProcess, delay_ns: int = 0) -> None:
        if self.platform.task_done(handle):
            return
        if delay_ns > 0:
            seconds = delay_ns / 1e9
            why = f"Waiting for shutdown_delay of {go_duration(delay_ns)} before killing the task."
            self.platform.note_task_event(handle, "Waiting for shutdown delay", why)
            deadline = time.monotonic() + seconds
            while not self.platform.task_done(handle) and time.monotonic() < deadline:
                if self._delay_stop.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                    break
            if self.platform.task_done(handle):
                return
        try:
            self.platform.stop_task(handle)
        except Exception:
            log.exception("stopping task %s of %s", name, self.alloc_id[:8])

    def detach(self) -> None:
        """Forget the tasks without stopping them (they keep running for a later adopt)."""
        self._delay_stop.set()
        with self._lock:
            self.stopping = True
            for h in self._handles.values():
                self.platform.detach_task(h)
            self._handles.clear()
        self._join_template_watch()
        self._stop_retrying.set()

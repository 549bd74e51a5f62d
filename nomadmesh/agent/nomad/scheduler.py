"""The dev agent's scheduler: one worker thread that turns evaluations into running allocations.

Each pass (on notify() or every TICK_S):
  1. processes pending evaluations (nomad/evals.py: plan, place, stop, update, deployments);
  2. makes the runtime match the allocations' desired status (nomad/runner.py: start or stop
     task processes, network namespaces and Consul registrations);
  3. watches running deployments (nomad/deployments.py: health, success, auto-revert);
  4. keeps each job's Status (pending/running/dead) in step with its allocations.

start() first brings what older agents stored up to date (nomad/migrations.py), then reconciles
what the state says with what really runs, so an agent restarted after a SIGKILL adopts
still-running tasks, restarts or fails the dead ones and tears down orphaned namespaces.
stop(stop_tasks=True) stops every task and namespace, like `nomad agent -dev` on SIGINT.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.nomad import deployments, evals, jobs, migrations, node_ops
from nomadmesh.agent.nomad.events import EventBroker
from nomadmesh.agent.nomad.node import OPERATOR_SET, node_document
from nomadmesh.agent.nomad.runner import AllocRunner, Platform
from nomadmesh.agent.nomad.structs import is_terminal, key_of_job, now_ns, owner_key

log = logging.getLogger("nomadmesh.agent.nomad.scheduler")
TICK_S = 0.2


class Scheduler:
    def __init__(self, ctx: AgentContext, catalog: Catalog, xds_address: str):
        """`catalog` gets the allocations' services; `xds_address` goes into each Envoy bootstrap."""
        self.ctx = ctx
        self.catalog = catalog
        self.xds_address = xds_address
        self.platform = Platform(ctx)
        self.events = EventBroker.on(ctx.state)  # before any write of ours: the node's registration is an event
        self._runners: dict[str, AllocRunner] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        migrations.migrate(self.ctx.state)  # before anything reads a stored job
        self.register_node()
        self._reconcile_on_start()
        self._thread = threading.Thread(target=self._loop, name="nomad-scheduler", daemon=True)
        self._thread.start()
        self.notify()

    def notify(self) -> None:
        self._wake.set()

    def stop(self, stop_tasks: bool = True) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            runners = list(self._runners.values())
            self._runners.clear()
        if stop_tasks:
            threads = [threading.Thread(target=r.stop, kwargs={"final_status": None}) for r in runners]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            self.platform.remove_bridge()
        else:
            for r in runners:
                r.detach()

    def _runner(self, alloc_id: str) -> AllocRunner:
        return AllocRunner(self.ctx, self.platform, self.catalog, self.xds_address, alloc_id, self.notify)

    def alloc_runner(self, alloc_id: str) -> AllocRunner | None:
        """The runner of a live allocation on this node (the client's alloc runner), if any."""
        with self._lock:
            return self._runners.get(alloc_id)

    # --- node ---------------------------------------------------------------------------------

    def node(self) -> dict[str, Any]:
        rec = self.ctx.state.get("node", self.ctx.node_id)
        assert rec is not None, "start() registers the node"
        return rec.value

    def register_node(self) -> None:
        """Register the node (on start, and when a purge removed it: a live client rejoins); an
        operator's drain and eligibility outlive a restart, as in Nomad's state."""
        cfg = self.ctx.config
        doc = node_document(self.ctx.node_id, cfg.node_name, cfg.datacenter, f"{cfg.bind}:{cfg.nomad_port}",
                            self.platform.bridge_unavailable(), 0, cfg.host_volumes)
        with self.ctx.state.write() as txn:
            old = txn.get("node", self.ctx.node_id)
            if old is not None:
                doc.update({k: old.value[k] for k in OPERATOR_SET if k in old.value})
            txn.event_type = "NodeRegistration"
            doc["CreateIndex"] = old.value["CreateIndex"] if old else txn.index
            doc["ModifyIndex"] = txn.index
            txn.put("node", self.ctx.node_id, doc)
            if old is None:
                node_ops.rejoined(txn, self.ctx.node_id)

    # --- restart reconciliation ----------------------------------------------------------------

    def _reconcile_on_start(self) -> None:
        live: set[str] = set()
        for alloc in self.ctx.state.values("alloc"):
            if alloc["ClientStatus"] in ("complete", "failed", "lost"):
                continue
            runner = self._runner(alloc["ID"])
            if alloc["DesiredStatus"] == "run":
                runner.restore()  # adopt what still runs; restart or fail what died
                self._runners[alloc["ID"]] = runner
                live.add(alloc["ID"])
            else:
                runner.restore(start_dead=False)
                # The agent died while stopping it: finish now, without holding the agent's start
                # for a shutdown_delay that was (mostly) waited out before.
                runner.stop(final_status="complete", shutdown_delay=False)
        self._reconcile_network(live)
        self._deregister_orphan_services(live)

    def _reconcile_network(self, extra_keep: frozenset[str] | set[str] = frozenset()) -> None:
        """Host networking must match state: nothing left of an allocation that no longer runs
        (on start, and after every stop: a job stopped while its network was being set up)."""
        allocs = self.ctx.state.values("alloc")
        with self._lock:
            keep = set(self._runners) | set(extra_keep)
        keep |= {a["ID"] for a in allocs if not is_terminal(a)}
        self.platform.reconcile_network({a["ID"] for a in allocs}, keep)

    def _deregister_orphan_services(self, live: set[str]) -> None:
        catalog = self.catalog
        for svc in catalog.services():
            sid = svc.get("ID", "")
            if sid.startswith("_nomad-task-") and not any(sid.startswith(f"_nomad-task-{a}-") for a in live):
                catalog.deregister_service(sid)

    # --- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        last_index, deploying, next_due = -1, True, 0
        while not self._stopping.is_set():
            woken = self._wake.wait(TICK_S)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._fail_lost_networks()
            index = self.ctx.state.index
            # Idle agent: nothing changed, no deployment clock is running and no delayed
            # evaluation (a reschedule's WaitUntil) is due yet, so skip the pass.
            if not woken and index == last_index and not deploying and not (next_due and now_ns() >= next_due):
                continue
            last_index = index
            try:
                self._pass()
                # A drain in progress, like a deployment, has a clock (the drainer's batch window).
                deploying = any(d["Status"] == "running" for d in self.ctx.state.values("deployment")) \
                    or self._draining()
                next_due = min((int(e["_WaitUntilNs"]) for e in self.ctx.state.values("eval")
                                if e["Status"] == "pending" and e.get("_WaitUntilNs")), default=0)
            except Exception:  # never let one bad pass kill scheduling for good
                log.exception("scheduler pass failed")

    def _draining(self) -> bool:
        rec = self.ctx.state.get("node", self.ctx.node_id)
        return rec is not None and rec.value.get("DrainStrategy") is not None

    def _pass(self) -> None:
        state = self.ctx.state
        rec = state.get("node", self.ctx.node_id)
        if rec is None:
            return  # purged by an operator: register_node() puts it back at once, as a live client rejoins
        node = rec.value
        evals.failure_evals(state)
        now = now_ns()
        pending = sorted((e for e in state.values("eval") if e["Status"] == "pending" and evals.due(e, now)),
                         key=lambda e: e["CreateIndex"])
        for ev in pending:
            try:
                evals.process_on_node(state, ev["ID"], node["ID"])  # re-read: a purge may have come between
            except Exception as e:
                log.exception("evaluation %s failed", ev["ID"])
                with state.write() as txn:
                    cur = txn.get("eval", ev["ID"])
                    if cur is not None:
                        txn.put("eval", ev["ID"], dict(cur.value, Status="failed",
                                                       StatusDescription=f"{type(e).__name__}: {e}"))
        if node_ops.drain_step(state, node["ID"]):
            self.notify()
        self._sync_runners()
        for job_id in deployments.tick(state):
            deployments.follow_up_eval(state, job_id)
            self.notify()
        self._update_job_statuses()

    def _sync_runners(self) -> None:
        reaped = False
        with self._lock:
            allocs = self.ctx.state.values("alloc")
            for gone in set(self._runners) - {a["ID"] for a in allocs}:
                if self._runners[gone].finished:  # garbage-collected (PUT /v1/system/gc) once it ended
                    del self._runners[gone]
                    reaped = True
            for alloc in allocs:
                runner = self._runners.get(alloc["ID"])
                if alloc["DesiredStatus"] == "run" and not is_terminal(alloc):
                    if runner is None:
                        runner = self._runner(alloc["ID"])
                        self._runners[alloc["ID"]] = runner
                        runner.start()
                    else:
                        runner.refresh(alloc)
                elif runner is not None and alloc["DesiredStatus"] != "run" and not runner.stopping:
                    threading.Thread(target=self._stop_runner, args=(alloc["ID"], runner),
                                     name=f"stop-{alloc['ID'][:8]}", daemon=True).start()
                elif runner is not None and runner.finished:
                    del self._runners[alloc["ID"]]  # all tasks ended on their own
                    reaped = True
        if reaped:  # off the scheduler thread: it runs iptables-save
            threading.Thread(target=self._reconcile_network, name="net-reconcile", daemon=True).start()

    def _fail_lost_networks(self) -> None:
        """An allocation whose network namespace was deleted behind our back fails (tasks stopped),
        so its reschedule policy can replace it; checked every tick, a stat per allocation."""
        with self._lock:
            lost = [(a, r) for a, r in self._runners.items() if r.claim_network_lost()]
        for alloc_id, runner in lost:
            threading.Thread(target=self._fail_runner, args=(alloc_id, runner),
                             name=f"netlost-{alloc_id[:8]}", daemon=True).start()

    def _fail_runner(self, alloc_id: str, runner: AllocRunner) -> None:
        runner.fail_network_lost()
        with self._lock:
            if self._runners.get(alloc_id) is runner:
                del self._runners[alloc_id]
        self._reconcile_network()
        self.notify()

    def _stop_runner(self, alloc_id: str, runner: AllocRunner) -> None:
        runner.stop(final_status="complete")
        with self._lock:
            if self._runners.get(alloc_id) is runner:
                del self._runners[alloc_id]
        self._reconcile_network()
        self.notify()

    def _update_job_statuses(self) -> None:
        state = self.ctx.state
        allocs = state.values("alloc")
        evals_ = state.values("eval")
        for job in state.values("job"):
            mine = [a for a in allocs if owner_key(a) == key_of_job(job)]
            nonterminal = [a for a in mine if a["ClientStatus"] in ("pending", "running")]
            blocked = any(e["Status"] == "blocked" for e in evals_ if owner_key(e) == key_of_job(job))
            if jobs.is_parameterized(job):  # a parent is never placed: running until stopped (Nomad)
                status = "dead" if job.get("Stop") else "running"
            elif any(a["ClientStatus"] == "running" for a in nonterminal):
                status = "running"
            elif nonterminal or (blocked and not job.get("Stop")):
                status = "pending"
            elif job.get("Stop") or mine:
                status = "dead"
            else:
                status = "pending"
            if status != job.get("Status"):
                with state.write() as txn:
                    cur = txn.get("job", key_of_job(job))
                    if cur is not None and cur.value.get("Status") != status:
                        txn.put("job", cur.key, dict(cur.value, Status=status, ModifyIndex=txn.index))

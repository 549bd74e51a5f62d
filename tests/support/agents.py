"""The dev agent in a subprocess (RunningAgent) and in this process (InProcessAgent), for tests that talk to it.

RunningAgent runs `python -m nomadmesh agent --dev ...` on random free ports and a temporary data dir and
waits until both APIs answer /v1/status/leader. InProcessAgent serves the Nomad API of an in-process
scheduler with waitress (no Consul API), for tests that look at the agent's state directly.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import consul
import nomad
import pytest
import requests

from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.context import AgentConfig, AgentContext
from nomadmesh.agent.datadir import alloc_root
from nomadmesh.agent.http.nomad_api import create_nomad_app
from nomadmesh.agent.http.parts import NomadParts
from nomadmesh.agent.nomad.scheduler import Scheduler
from nomadmesh.httpserve import HttpServers, bind_socket
from support.net import free_port, free_ports, free_tcp_udp_port
from support.paths import REPO

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass
class RunningAgent:
    data_dir: Path
    nomad_port: int
    consul_port: int
    grpc_port: int | None = None  # the xDS TCP port is off unless a test asks for it
    dns_port: int = 0  # 0: a free one, never Consul's 8600 (agents run side by side)
    extra_args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    log_path: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-agent.log"
        if not self.dns_port:
            self.dns_port = free_tcp_udp_port(avoid=frozenset({self.nomad_port, self.consul_port}))

    @property
    def nomad_addr(self) -> str:
        return f"http://{self.host}:{self.nomad_port}"

    @property
    def consul_addr(self) -> str:
        return f"http://{self.host}:{self.consul_port}"

    @property
    def alloc_dir(self) -> Path:
        """Where its allocation dirs are (the default --alloc-dir, outside the private data dir)."""
        return alloc_root(self.data_dir, None)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "agent not running"
        return self.proc.pid

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "nomadmesh", "agent", "--dev", "--data-dir", str(self.data_dir),
                "--nomad-port", str(self.nomad_port), "--consul-port", str(self.consul_port),
                "--dns-port", str(self.dns_port),
                *(("--grpc-port", str(self.grpc_port)) if self.grpc_port is not None else ()), *self.extra_args]

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        pending = {self.nomad_addr, self.consul_addr}
        while pending:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"agent not ready after {START_TIMEOUT_S}s:\n{self.log_tail()}")
            for addr in list(pending):
                try:
                    if requests.get(f"{addr}/v1/status/leader", timeout=1).status_code == 200:
                        pending.discard(addr)
                except requests.RequestException:
                    pass
            if pending:
                time.sleep(0.05)

    def stop(self, kill: bool = False) -> int | None:
        """SIGTERM (clean stop: tasks stopped) or SIGKILL; returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return proc.returncode if proc else None
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=10)

    def restart(self, kill: bool = True) -> None:
        """Stop (SIGKILL by default, so nothing is cleaned up) and start again on the same dir and ports."""
        self.stop(kill=kill)
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def started_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningAgent]]:
    """A generator for fixtures: yields `start(*extra_args, data_dir=None)`, stops every agent it started."""
    started: list[RunningAgent] = []

    def start(*extra_args: str, data_dir: Path | None = None) -> RunningAgent:
        nomad_port, consul_port = free_ports(2)
        agent = RunningAgent(
            data_dir=data_dir or tmp_path_factory.mktemp("agent") / "data",
            nomad_port=nomad_port, consul_port=consul_port, extra_args=extra_args,
            host=extra_args[extra_args.index("--bind") + 1] if "--bind" in extra_args else "127.0.0.1",
        )
        started.append(agent)
        agent.start()
        return agent

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()
            shutil.rmtree(agent.alloc_dir, ignore_errors=True)  # the default one is in the temp dir


class InProcessAgent:
    """The Nomad half (state, catalog, scheduler, runtime) in this process, its API served by uvicorn."""

    def __init__(self, tmp: Path, port: int | None = None):
        port = port or free_port()
        self.ctx = AgentContext.open(AgentConfig(data_dir=tmp, nomad_port=port, node_name="test-node"))
        self.catalog = Catalog(self.ctx)
        self.catalog.start()
        self.scheduler = Scheduler(self.ctx, self.catalog, xds_address="")  # these jobs run no sidecar
        self.scheduler.start()
        self.server = HttpServers()
        self.server.start([(create_nomad_app(NomadParts(self.ctx, self.scheduler)), bind_socket("127.0.0.1", port))])
        self.addr = f"http://127.0.0.1:{port}"
        self.client = nomad.Nomad(host="127.0.0.1", port=port, timeout=10)

    def close(self) -> None:
        self.server.stop()
        self.scheduler.stop(stop_tasks=True)
        self.catalog.stop()
        self.ctx.close()
        shutil.rmtree(self.ctx.config.alloc_root, ignore_errors=True)  # the default one is in the temp dir


def clients(agent: RunningAgent) -> tuple[nomad.Nomad, consul.Consul]:
    """python-nomad and py-consul on a running agent."""
    return (nomad.Nomad(host="127.0.0.1", port=agent.nomad_port, timeout=10),
            consul.Consul(host="127.0.0.1", port=agent.consul_port))

"""Shared fixtures: a real dev agent in a subprocess, on random free ports and a temporary data dir.

`running_agent` starts `python -m nomadmesh agent --dev ...` and waits until both APIs answer
/v1/status/leader. `agent_factory(*extra_args)` starts more (or differently configured) agents.
Every agent started here is stopped at the end of the test (SIGTERM, then SIGKILL after 30 s).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest
import requests

from nomadmesh.agent.datadir import alloc_root
from nomadmesh.deploy.target import consul_client, target_from_env

if TYPE_CHECKING:
    from host_mesh import HostMesh

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


def wait_until(pred: Callable[[], Any], timeout: float, step: float = 0.05, what: str = "condition") -> Any:
    """Poll `pred` until it returns something truthy and return that; errors count as "not yet".

    Bounded in time; the AssertionError names what was awaited and the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (requests.RequestException, OSError, KeyError, ValueError, StopIteration):
            pass
        time.sleep(step)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningAgent:
    data_dir: Path
    nomad_port: int
    consul_port: int
    grpc_port: int | None = None  # the xDS TCP port is off unless a test asks for it
    extra_args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    log_path: Path = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-agent.log"

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


def _agent_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningAgent]]:
    started: list[RunningAgent] = []

    def start(*extra_args: str, data_dir: Path | None = None) -> RunningAgent:
        agent = RunningAgent(
            data_dir=data_dir or tmp_path_factory.mktemp("agent") / "data",
            nomad_port=free_port(), consul_port=free_port(), extra_args=extra_args,
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


@pytest.fixture
def agent_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningAgent]]:
    """`agent_factory("--default-policy", "deny", data_dir=None)` starts an agent and returns it."""
    yield from _agent_factory(tmp_path_factory)


@pytest.fixture(scope="module")
def module_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    """One agent shared by a test module (tests must use names of their own)."""
    factory = _agent_factory(tmp_path_factory)
    start = next(factory)
    try:
        yield start()
    finally:
        factory.close()


@pytest.fixture
def running_agent(agent_factory: Callable[..., RunningAgent]) -> RunningAgent:
    return agent_factory()


@pytest.fixture
def host_mesh(running_agent: RunningAgent, tmp_path: Path) -> Iterator[HostMesh]:
    """The seed's host workflow (tests/host_mesh.py) started on `running_agent`; nothing may be left after it."""
    from host_mesh import HostMesh  # host_mesh imports this module: import it only once this one is loaded

    mesh = HostMesh(running_agent, tmp_path)
    try:
        yield mesh.start()
    finally:
        mesh.stop()
    assert mesh.leftovers() == []


@pytest.fixture
def consul(module_agent: RunningAgent) -> Iterator[Any]:
    """py-consul on the module's agent, with no intentions before and after each test."""
    client = consul_client(target_from_env({}, consul_addr=module_agent.consul_addr))

    def clear() -> None:
        for entry in client.config.list("service-intentions") or []:
            client.config.delete("service-intentions", entry["Name"])

    clear()
    try:
        yield client
    finally:
        clear()


# Keep subprocess agents out of the environment pytest itself may have (a real cluster's address).
for _var in ("NOMAD_ADDR", "CONSUL_HTTP_ADDR"):
    os.environ.pop(_var, None)

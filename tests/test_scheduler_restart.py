"""An agent SIGKILLed and started again on the same data dir adopts the tasks that still run,
restarts the ones that died meanwhile, and a clean stop leaves no task or namespace behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import nomad
import pytest

from test_agent_nomad_api import free_port, wait_for
from test_agent_nomad_run import HTTP_JOB, SERVER, get_text, pid_alive

TESTS = Path(__file__).parent
AGENT = f"""
import signal, sys, time
sys.path.insert(0, {str(TESTS)!r})
from pathlib import Path
from test_agent_nomad_api import InProcessAgent
agent = InProcessAgent(Path(sys.argv[1]), int(sys.argv[2]))
def stop(*_):
    agent.close()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


class AgentProcess:
    """An agent in its own process, so it can really be SIGKILLed."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None
        self.client: nomad.Nomad | None = None

    def start(self) -> None:
        port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", AGENT, str(self.data_dir), str(port)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.client = nomad.Nomad(host="127.0.0.1", port=port, timeout=10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def agent_proc(tmp_path: Path) -> Iterator[AgentProcess]:
    a = AgentProcess(tmp_path / "data")
    a.start()
    try:
        yield a
    finally:
        a.terminate()
        # Whatever a failed test left running must not outlive it.
        for pid in _task_pids(a.data_dir):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def _task_pids(data_dir: Path) -> list[int]:
    from nomadmesh.agent.state import State

    db = data_dir / "state.db"
    if not db.exists():
        return []
    state = State(db)
    try:
        return [h["Pid"] for a in state.values("alloc") for h in (a.get("_Handles") or {}).values() if h]
    finally:
        state.close()


def running(client: nomad.Nomad) -> dict[str, Any] | None:
    for stub in client.job.get_allocations("web"):
        if stub["ClientStatus"] == "running" and stub["DesiredStatus"] == "run":
            return client.allocation.get_allocation(stub["ID"])
    return None


def test_sigkill_restart_adopts_live_tasks_and_restarts_dead_ones(agent_proc: AgentProcess) -> None:
    c = agent_proc.client
    job = c.jobs.parse(HTTP_JOB % SERVER.replace('"', '\\"'), canonicalize=True)
    c.jobs.register_job({"Job": job})
    alloc = wait_for(lambda: running(c), 20)
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]
    (pid,) = wait_for(lambda: _task_pids(agent_proc.data_dir))

    agent_proc.kill()
    assert pid_alive(pid)  # the task outlives its agent
    agent_proc.start()
    c = agent_proc.client
    again = wait_for(lambda: running(c), 20)
    assert again["ID"] == alloc["ID"] and again["TaskStates"]["server"]["Restarts"] == 0
    assert _task_pids(agent_proc.data_dir) == [pid]
    assert c.job.get_job("web")["Version"] == 0  # state intact

    # Kill the agent, then the task: the next agent restarts it (one attempt of the restart block).
    agent_proc.kill()
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 5)
    agent_proc.start()
    c = agent_proc.client
    restarted = wait_for(lambda: (a := running(c)) and a["TaskStates"]["server"]["Restarts"] == 1 and a, 20)
    assert restarted["ID"] == alloc["ID"]
    (new_pid,) = _task_pids(agent_proc.data_dir)
    assert new_pid != pid and pid_alive(new_pid)
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]

    # A clean stop (SIGTERM) stops the tasks, like `nomad agent -dev` on Ctrl-C.
    agent_proc.terminate()
    wait_for(lambda: not pid_alive(new_pid), 10)

    # The next agent starts it again; an agent's own stop does not count as a task restart.
    agent_proc.start()
    c = agent_proc.client
    back = wait_for(lambda: running(c), 20)
    assert back["ID"] == alloc["ID"] and back["TaskStates"]["server"]["Restarts"] == 1
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]

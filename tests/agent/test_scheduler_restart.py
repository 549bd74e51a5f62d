"""An agent SIGKILLed and started again on the same data dir adopts the tasks that still run,
restarts the ones that died meanwhile, and a clean stop leaves no task or namespace behind."""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nomad
import pytest
from test_agent_nomad_run import HTTP_JOB, SERVER, get_text, pid_alive

from support.waiting import wait_until


@pytest.fixture
def agent(running_agent: Any) -> Iterator[Any]:
    try:
        yield running_agent
    finally:
        running_agent.stop()
        # Whatever a failed test left running must not outlive it.
        for pid in _task_pids(running_agent.data_dir):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def client(agent: Any) -> nomad.Nomad:
    return nomad.Nomad(host="127.0.0.1", port=agent.nomad_port, timeout=10)


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


def test_sigkill_restart_adopts_live_tasks_and_restarts_dead_ones(agent: Any) -> None:
    c = client(agent)
    job = c.jobs.parse(HTTP_JOB % SERVER.replace('"', '\\"'), canonicalize=True)
    c.jobs.register_job({"Job": job})
    alloc = wait_until(lambda: running(c), 20)
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]
    (pid,) = wait_until(lambda: _task_pids(agent.data_dir))

    agent.stop(kill=True)
    assert pid_alive(pid)  # the task outlives its agent
    agent.start()
    again = wait_until(lambda: running(c), 20)
    assert again["ID"] == alloc["ID"] and again["TaskStates"]["server"]["Restarts"] == 0
    assert _task_pids(agent.data_dir) == [pid]
    assert c.job.get_job("web")["Version"] == 0  # state intact

    # Kill the agent, then the task: the next agent restarts it (one attempt of the restart block).
    agent.stop(kill=True)
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5)
    agent.start()
    restarted = wait_until(lambda: (a := running(c)) and a["TaskStates"]["server"]["Restarts"] == 1 and a, 20)
    assert restarted["ID"] == alloc["ID"]
    (new_pid,) = _task_pids(agent.data_dir)
    assert new_pid != pid and pid_alive(new_pid)
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]

    # A clean stop (SIGTERM) stops the tasks, like `nomad agent -dev` on Ctrl-C.
    assert agent.stop() == 0
    assert not pid_alive(new_pid)

    # The next agent starts it again; an agent's own stop does not count as a task restart.
    agent.start()
    back = wait_until(lambda: running(c), 20)
    assert back["ID"] == alloc["ID"] and back["TaskStates"]["server"]["Restarts"] == 1
    assert get_text(f"http://127.0.0.1:{port}/") == alloc["ID"]


def test_agent_killed_while_stopping_an_allocation_finishes_the_stop(agent: Any) -> None:
    from nomadmesh.agent.state import State

    c = client(agent)
    c.jobs.register_job({"Job": c.jobs.parse(HTTP_JOB % SERVER.replace('"', '\\"'), canonicalize=True)})
    alloc = wait_until(lambda: running(c), 20)
    (pid,) = wait_until(lambda: _task_pids(agent.data_dir))
    agent.stop(kill=True)
    # What the dead agent had decided but not done yet: this allocation is to stop.
    state = State(agent.data_dir / "state.db")
    try:
        with state.write() as txn:
            doc = txn.get("alloc", alloc["ID"]).value
            txn.put("alloc", alloc["ID"], dict(doc, DesiredStatus="stop"))
            job = txn.get("job", "default/web").value
            txn.put("job", "default/web", dict(job, Stop=True))
    finally:
        state.close()
    agent.start()
    c = client(agent)
    done = wait_until(lambda: (a := c.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete" and a, 20)
    assert done["TaskStates"]["server"]["Restarts"] == 0  # adopted to be stopped, never restarted
    assert not pid_alive(pid)

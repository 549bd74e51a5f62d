"""POST/PUT /v1/allocation/:id/stop and /v1/client/allocation/:id/signal|restart as Nomad answers them,
driven with python-nomad over real HTTP on an in-process agent whose tasks really run: signals reach the
task processes, restarts start them again, a stopped allocation is replaced."""
from __future__ import annotations

import os
from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.waiting import wait_until

PROGRAM = ("import os,signal,sys,time;"
           "signal.signal(signal.SIGUSR1,lambda n,f:print('got',n,flush=True));"
           "signal.signal(signal.SIGHUP,lambda n,f:print('got',n,flush=True));"
           "print('start',os.getpid(),flush=True);"
           "[time.sleep(1) for _ in iter(int,1)]")
TASK = """
    task "%s" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-u", "-c", "PROGRAM"]
      }
      kill_timeout = "2s"
    }"""
JOB = ('job "sig" {\n  group "g" {' + "".join(TASK.replace("%s", t) for t in ("main", "side"))
       + "\n  }\n}\n").replace("PROGRAM", PROGRAM)


def running(agent: InProcessAgent, exclude: str = "") -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations("sig"):
            states = stub["TaskStates"] or {}
            if stub["ID"] != exclude and stub["ClientStatus"] == "running" and len(states) == 2 \
                    and all(s["State"] == "running" for s in states.values()):
                return agent.client.allocation.get_allocation(stub["ID"])
        return None
    alloc = wait_until(ready, 20)
    for task in ("main", "side"):
        wait_until(lambda t=task: "start" in stdout(agent, alloc["ID"], t))
    return alloc


def start(agent: InProcessAgent) -> dict[str, Any]:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(JOB, canonicalize=True)})
    return running(agent)


def stdout(agent: InProcessAgent, alloc_id: str, task: str) -> str:
    return requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc_id}", timeout=10,
                        params={"task": task, "type": "stdout", "plain": "true"}).text


def pid_of(agent: InProcessAgent, alloc_id: str, task: str) -> int:
    return int(agent.ctx.state.get("alloc", alloc_id).value["_Handles"][task]["Pid"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text.strip()


def test_signal_reaches_one_task_or_all(agent: InProcessAgent) -> None:
    alloc = start(agent)
    aid = alloc["ID"]
    assert agent.client.client.allocation.signal_allocation(aid, "SIGUSR1", task="main") == {"Index": 0}
    wait_until(lambda: "got 10" in stdout(agent, aid, "main"))
    assert "got" not in stdout(agent, aid, "side")
    r = requests.put(f"{agent.addr}/v1/client/allocation/{aid}/signal", json={"Signal": "SIGHUP"}, timeout=10)
    assert r.status_code == 200, r.text
    for task in ("main", "side"):
        wait_until(lambda t=task: "got 1\n" in stdout(agent, aid, t))
    events = agent.client.allocation.get_allocation(aid)["TaskStates"]["main"]["Events"]
    assert [e["Type"] for e in events].count("Signaling") == 2
    assert agent.client.allocation.get_allocation(aid)["ClientStatus"] == "running"


def test_signal_refusals(agent: InProcessAgent) -> None:
    alloc = start(agent)
    signal_allocation = agent.client.client.allocation.signal_allocation
    assert refusal(lambda: signal_allocation(alloc["ID"], "SIGHUP", task="nosuch")) == (500, "Task not found")
    missing = "00000000-0000-0000-0000-000000000000"
    assert refusal(lambda: signal_allocation(missing, "SIGHUP")) == (404, f'Unknown allocation "{missing}"')
    r = requests.post(f"{agent.addr}/v1/client/allocation/{alloc['ID']}/signal", data="{", timeout=10)
    assert r.status_code == 400


def test_restart_one_task_then_the_running_ones(agent: InProcessAgent) -> None:
    alloc = start(agent)
    aid = alloc["ID"]
    main_pid, side_pid = pid_of(agent, aid, "main"), pid_of(agent, aid, "side")
    r = requests.put(f"{agent.addr}/v1/client/allocation/{aid}/restart", json={"TaskName": "main"}, timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: stdout(agent, aid, "main").count("start") == 2, 20)
    assert pid_of(agent, aid, "main") != main_pid and pid_of(agent, aid, "side") == side_pid
    with pytest.raises(ProcessLookupError):
        os.kill(main_pid, 0)
    events = agent.client.allocation.get_allocation(aid)["TaskStates"]["main"]["Events"]
    restart = next(e for e in events if e["Type"] == "Restart Signaled")
    assert restart["RestartReason"] == "User requested task to restart"

    agent.client.client.allocation.restart_allocation(aid)  # python-nomad: no body, the running tasks
    wait_until(lambda: stdout(agent, aid, "side").count("start") == 2, 20)
    wait_until(lambda: stdout(agent, aid, "main").count("start") == 3, 20)
    r = requests.post(f"{agent.addr}/v1/client/allocation/{aid}/restart", json={"AllTasks": True}, timeout=10)
    assert r.status_code == 200, r.text
    wait_until(lambda: stdout(agent, aid, "side").count("start") == 3, 20)
    assert running(agent)["ID"] == aid  # restarted in place: still the same allocation


def test_restart_refusals(agent: InProcessAgent) -> None:
    alloc = start(agent)
    url = f"{agent.addr}/v1/client/allocation/{alloc['ID']}/restart"
    for body, text in (({"TaskName": "nosuch"}, "Could not find task runner for task: nosuch"),
                       ({"TaskName": "main", "AllTasks": True}, "task name cannot be set when restarting all tasks")):
        r = requests.post(url, json=body, timeout=10)
        assert (r.status_code, r.text.strip()) == (500, text)
    missing = "00000000-0000-0000-0000-000000000000"
    assert refusal(lambda: agent.client.client.allocation.restart_allocation(missing)) == (
        404, f'Unknown allocation "{missing}"')


def test_stop_replaces_the_allocation(agent: InProcessAgent) -> None:
    alloc = start(agent)
    aid = alloc["ID"]
    pid = pid_of(agent, aid, "main")
    out = agent.client.allocation.stop_allocation(aid)
    assert set(out) >= {"EvalID", "Index"} and out["EvalID"]
    ev = agent.client.evaluation.get_evaluation(out["EvalID"])
    assert ev["TriggeredBy"] == "alloc-stop" and ev["JobID"] == "sig"
    replacement = running(agent, exclude=aid)
    assert replacement["PreviousAllocation"] == aid and replacement["Name"] == alloc["Name"]
    old = wait_until(lambda: (a := agent.client.allocation.get_allocation(aid))["ClientStatus"] == "complete" and a)
    assert old["DesiredStatus"] == "stop" and old["DesiredDescription"] == "alloc is being migrated"
    assert old["DesiredTransition"]["Migrate"] is True and old["NextAllocation"] == replacement["ID"]
    wait_until(lambda: not pid_alive(pid))
    assert len([a for a in agent.client.job.get_allocations("sig") if a["DesiredStatus"] == "run"]) == 1
    missing = "00000000-0000-0000-0000-000000000000"
    assert refusal(lambda: agent.client.allocation.stop_allocation(missing)) == (404, "allocation not found")
    r = requests.put(f"{agent.addr}/v1/allocation/{aid}/stop", params={"reschedule": "maybe"}, timeout=10)
    assert r.status_code == 400

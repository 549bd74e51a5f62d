"""Job blocks the dev agent honours as `nomad agent -dev` does on one node, over real HTTP with
python-nomad, on an in-process agent that really runs the tasks (raw_exec)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from support.agents import InProcessAgent
from support.waiting import wait_until


def register(agent: InProcessAgent, hcl: str) -> None:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(hcl, canonicalize=True)})


def running(agent: InProcessAgent, job: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations(job):
            if stub["ClientStatus"] == "running":
                return dict(agent.client.allocation.get_allocation(stub["ID"]))
        return None
    return wait_until(ready, 20)


def task_pid(agent: InProcessAgent, alloc_id: str, task: str) -> int:
    handles = wait_until(lambda: (agent.ctx.state.get("alloc", alloc_id).value.get("_Handles") or {}).get(task))
    return int(handles["Pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


SLEEPER = 'config {\n        command = "sleep"\n        args    = ["3600"]\n      }'

SHUTDOWN_DELAY = """
job "slow" {
  group "slow" {
    shutdown_delay = "1s"
    service {
      name     = "slow"
      provider = "consul"
    }
    task "app" {
      driver         = "raw_exec"
      shutdown_delay = "2s"
      SLEEPER
    }
  }
}
""".replace("SLEEPER", SLEEPER)


def test_shutdown_delay_deregisters_services_then_waits_then_kills(agent: InProcessAgent) -> None:
    register(agent, SHUTDOWN_DELAY)
    alloc = running(agent, "slow")
    wait_until(lambda: [s for s in agent.catalog.services() if s["Service"] == "slow"])
    pid = task_pid(agent, alloc["ID"], "app")
    agent.client.job.deregister_job("slow", purge=False)
    # The service leaves the catalog first; the task is still running then, waiting out the delays.
    wait_until(lambda: not [s for s in agent.catalog.services() if s["Service"] == "slow"])
    assert alive(pid)
    waiting = wait_until(lambda: [e for e in agent.client.allocation.get_allocation(alloc["ID"])["TaskStates"]["app"]
                                  ["Events"] if e["Type"] == "Waiting for shutdown delay"])
    assert waiting[0]["DisplayMessage"] == "Waiting for shutdown_delay of 2s before killing the task."
    assert alive(pid)
    wait_until(lambda: not alive(pid), 15)
    done = wait_until(lambda: (a := agent.client.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete"
                      and a)
    events = [e["Type"] for e in done["TaskStates"]["app"]["Events"]]
    assert events[-1] == "Killed" and events.index("Waiting for shutdown delay") < events.index("Killing")


LEADER = """
job "led" {
  type = "batch"
  group "led" {
    task "leader" {
      driver = "raw_exec"
      leader = true
      config {
        command = "sleep"
        args    = ["1"]
      }
    }
    task "follower" {
      driver = "raw_exec"
      SLEEPER
    }
  }
}
""".replace("SLEEPER", SLEEPER)


def test_when_the_leader_exits_the_other_tasks_are_killed(agent: InProcessAgent) -> None:
    register(agent, LEADER)
    alloc = running(agent, "led")
    follower = task_pid(agent, alloc["ID"], "follower")
    done = wait_until(lambda: (a := agent.client.allocation.get_allocation(alloc["ID"]))["ClientStatus"] == "complete"
                      and a, 20)
    assert not alive(follower)
    events = [e["Type"] for e in done["TaskStates"]["follower"]["Events"]]
    assert "Leader Task Dead" in events and events[-1] == "Killed"
    assert done["TaskStates"]["leader"]["Failed"] is False and done["TaskStates"]["follower"]["State"] == "dead"

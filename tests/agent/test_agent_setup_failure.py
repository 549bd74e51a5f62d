"""An allocation whose setup fails (here: a raw_exec task without config.command) fails, with the
reason in its ClientDescription and a Setup Failure event per task, and the agent keeps running.

Drives AllocRunner._run's except block, whose ClientDescription closure used the except variable
(ruff F821): the message is now bound before the closure is made."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from nomadmesh.agent.nomad.runner import AllocRunner
from support.agents import InProcessAgent
from support.waiting import wait_until

NO_COMMAND_JOB = """
job "broken" {
  group "broken" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "main" {
      driver = "raw_exec"
      config {
        args = ["-c", "true"]
      }
    }
  }
}
"""


def test_a_setup_failure_fails_the_allocation_with_its_reason(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(NO_COMMAND_JOB, canonicalize=True)
    agent.client.jobs.register_job({"Job": job})

    def failed() -> dict[str, Any] | None:
        for stub in agent.client.job.get_allocations("broken"):
            alloc = agent.client.allocation.get_allocation(stub["ID"])
            if alloc.get("ClientDescription", "").startswith("setup failed"):
                return alloc
        return None

    alloc = wait_until(failed, 20, what="allocation marked setup failed")
    assert alloc["ClientDescription"] == "setup failed: task 'main': config.command is required"
    events = alloc["TaskStates"]["main"]["Events"]
    setup = [e for e in events if e["Type"] == "Setup Failure"]
    assert setup and setup[-1]["SetupError"] == "task 'main': config.command is required"
    assert agent.client.agent.get_agent()["config"]["NodeName"]  # the agent still answers


def test_a_reread_of_a_task_without_handle_records_nothing_and_retries_nothing(
        agent: InProcessAgent, caplog: pytest.LogCaptureFixture) -> None:
    """A runner re-reads a task (event None) whose handle is gone, e.g. stopped meanwhile: nothing to
    copy. It used to queue a write of None.to_nomad(), which failed and was retried until stop."""
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(NO_COMMAND_JOB, canonicalize=True)})
    stub = wait_until(lambda: next(iter(agent.client.job.get_allocations("broken")), None), 20, what="an allocation")
    assert agent.ctx.state.get("alloc", stub["ID"]) is not None  # a write would reach a real allocation
    runner = AllocRunner(agent.ctx, agent.scheduler.platform, agent.catalog, "", stub["ID"], lambda: None)
    try:
        runner._sync_task("main", None)
        retriers = [t.name for t in threading.enumerate() if t.name == f"alloc-{stub['ID'][:8]}-retry"]
        assert retriers == []
        assert not [r for r in caplog.records if "state not written" in r.getMessage()]
    finally:
        runner.detach()

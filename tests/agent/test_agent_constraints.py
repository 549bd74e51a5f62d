"""Constraints on the real agent over HTTP: evaluated against the node, never placed as if they held."""
from __future__ import annotations

import requests

from support.agents import InProcessAgent
from support.nomad_jobs import sleeper_job
from support.waiting import wait_until

HCL = sleeper_job("pinned", '''  constraint {
    attribute = "$${attr.kernel.name}"
    value     = "%s"
  }
''')


def test_a_constraint_the_node_fails_is_a_placement_failure(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(HCL % "windows")
    plan = agent.client.job.plan_job("pinned", {"Job": job})
    assert plan["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"${attr.kernel.name} = windows": 1}
    out = agent.client.jobs.register_job({"Job": job})
    ev = wait_until(lambda: (e := agent.client.evaluation.get_evaluation(out["EvalID"]))["Status"] == "complete" and e)
    assert ev["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {"${attr.kernel.name} = windows": 1}
    assert agent.client.job.get_allocations("pinned") == []


def test_a_constraint_the_node_meets_places(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(HCL % "linux")})
    wait_until(lambda: [a for a in agent.client.job.get_allocations("pinned") if a["ClientStatus"] == "running"], 10)


def test_a_version_constraint_is_refused(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(HCL % "linux")
    job["Constraints"][0].update(Operand="version", LTarget="${attr.nomad.version}", RTarget=">= 1.5")
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 400 and 'operator "version" not supported by the dev agent' in r.text
    assert requests.get(f"{agent.addr}/v1/job/pinned", timeout=10).status_code == 404

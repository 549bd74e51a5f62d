"""A job's `datacenters` against the node's (the agent's --datacenter, dc1 here): a job for another
datacenter is a placement failure with Nomad's metrics, never placed as if it matched."""
from __future__ import annotations

import pytest

from support.agents import InProcessAgent
from support.nomad_jobs import sleeper_job
from support.waiting import wait_until

HCL = sleeper_job("where", "  datacenters = [%s]\n")


def _evaluated(agent: InProcessAgent, datacenters: str) -> dict:
    out = agent.client.jobs.register_job({"Job": agent.client.jobs.parse(HCL % datacenters)})
    return wait_until(lambda: (e := agent.client.evaluation.get_evaluation(out["EvalID"]))["Status"] == "complete"
                      and e)


@pytest.mark.parametrize("datacenters", ['"dc2"', '"eu-*"', '"dc1x"', '"d"'])
def test_a_job_for_another_datacenter_is_not_placed(agent: InProcessAgent, datacenters: str) -> None:
    job = agent.client.jobs.parse(HCL % datacenters)
    plan = agent.client.job.plan_job("where", {"Job": job})
    metric = plan["FailedTGAllocs"]["g"]
    # Nomad found no ready node in those datacenters: none evaluated (the CLI's "No nodes were
    # eligible for evaluation"), and no datacenter has a node available.
    assert (metric["NodesEvaluated"], metric["NodesInPool"], metric["NodesAvailable"]) == (0, 0, {})
    ev = _evaluated(agent, datacenters)
    assert ev["FailedTGAllocs"]["g"]["NodesEvaluated"] == 0
    assert ev["BlockedEval"]
    assert agent.client.job.get_allocations("where") == []


@pytest.mark.parametrize("datacenters", ['"dc1"', '"dc*"', '"*"', '"dc2", "dc1"', '"*1"'])
def test_a_job_whose_datacenters_match_the_node_places(agent: InProcessAgent, datacenters: str) -> None:
    ev = _evaluated(agent, datacenters)
    assert not ev.get("FailedTGAllocs")
    wait_until(lambda: [a for a in agent.client.job.get_allocations("where") if a["ClientStatus"] == "running"], 10)

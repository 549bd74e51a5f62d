"""/v1/node/<id>/drain, /eligibility, /evaluate and /purge as Nomad answers them with one client
node: driven with python-nomad's own node client over real HTTP on an in-process agent that runs
a real `sleep` task."""
from __future__ import annotations

import json
from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import sleeper_job
from support.waiting import wait_until

SLEEP_HCL = sleeper_job("sleeper")


def register(agent: InProcessAgent) -> dict[str, Any]:
    job = agent.client.jobs.parse(SLEEP_HCL, canonicalize=True)
    out: dict[str, Any] = agent.client.jobs.register_job({"Job": job})
    return out


def node_id(agent: InProcessAgent) -> str:
    return str(agent.client.nodes.get_nodes()[0]["ID"])


def allocs(agent: InProcessAgent) -> list[dict[str, Any]]:
    return list(agent.client.job.get_allocations("sleeper"))


def running(agent: InProcessAgent) -> list[dict[str, Any]]:
    return [a for a in allocs(agent) if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]


def blocked_eval(agent: InProcessAgent) -> dict[str, Any] | None:
    return next((e for e in agent.client.job.get_evaluations("sleeper") if e["Status"] == "blocked"), None)


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text.strip()


def test_drain_migrates_the_allocations_which_stay_unplaced_until_the_node_is_eligible(
        agent: InProcessAgent) -> None:
    register(agent)
    first = wait_until(lambda: running(agent), timeout=20, what="the sleeper running")[0]
    nid = node_id(agent)
    out = agent.client.node.drain_node_with_spec(nid, {"Deadline": 3_600_000_000_000, "IgnoreSystemJobs": False})
    assert out["NodeModifyIndex"] > 0 and out["EvalIDs"] is None
    node = agent.client.node.get_node(nid)  # the drainer works beside the request, as Nomad's
    assert node["Drain"] is True and node["DrainStrategy"]["Deadline"] == 3_600_000_000_000
    assert node["SchedulingEligibility"] == "ineligible" and node["LastDrain"]["Status"] == "draining"
    assert not any(k.startswith("_") for k in node)
    # Nowhere to migrate to: the allocation is stopped and the drain completes; the node stays
    # ineligible, as Nomad leaves a drained node.
    node = wait_until(lambda: (n := agent.client.node.get_node(nid))["DrainStrategy"] is None and n,
                      timeout=20, what="the drain complete")
    assert node["SchedulingEligibility"] == "ineligible" and not node["Drain"]
    assert node["LastDrain"]["Status"] == "complete"
    assert [e["Message"] for e in node["Events"]][-2:] == ["Node drain strategy set", "Node drain complete"]
    assert agent.client.allocation.get_allocation(first["ID"])["ClientStatus"] == "complete"
    stopped = agent.client.allocation.get_allocation(first["ID"])
    assert stopped["DesiredStatus"] == "stop" and stopped["DesiredDescription"] == "alloc is being migrated"
    assert stopped["DesiredTransition"]["Migrate"] is True
    wait_until(lambda: agent.client.allocation.get_allocation(first["ID"])["ClientStatus"] == "complete",
               timeout=20, what="the migrated allocation stopped")
    blocked = wait_until(lambda: blocked_eval(agent), timeout=20, what="a blocked evaluation")
    assert blocked["FailedTGAllocs"]["g"]["NodesEvaluated"] == 0  # "No nodes were eligible for evaluation"
    drain_eval = next(e for e in agent.client.job.get_evaluations("sleeper") if e["TriggeredBy"] == "node-drain")
    assert drain_eval["NodeID"] == nid
    assert running(agent) == []
    assert agent.client.nodes.get_nodes()[0]["SchedulingEligibility"] == "ineligible"

    # Eligible again: the blocked evaluation runs and the group is placed.
    out = agent.client.node.eligible_node(nid, eligible=True)
    assert blocked["ID"] in out["EvalIDs"] and out["EvalCreateIndex"] > 0
    replacement = wait_until(lambda: running(agent), timeout=20, what="the sleeper placed again")[0]
    assert replacement["ID"] != first["ID"]


def test_an_ineligible_node_takes_no_new_placements(agent: InProcessAgent) -> None:
    nid = node_id(agent)
    out = agent.client.node.eligible_node(nid, ineligible=True)
    assert out["EvalIDs"] is None and out["NodeModifyIndex"] > 0
    assert agent.client.node.get_node(nid)["Events"][-1]["Message"] == "Node marked as ineligible for scheduling"
    register(agent)
    blocked = wait_until(lambda: blocked_eval(agent), timeout=20, what="a blocked evaluation")
    assert blocked["FailedTGAllocs"]["g"]["NodesAvailable"] == {"dc1": 0}
    assert allocs(agent) == []
    agent.client.node.eligible_node(nid, eligible=True)
    wait_until(lambda: running(agent), timeout=20, what="the sleeper placed once eligible")


def test_drain_cancelled_with_mark_eligible_as_python_nomads_own_test_does(agent: InProcessAgent) -> None:
    nid = node_id(agent)
    assert "EvalIDs" in agent.client.node.drain_node_with_spec(nid, drain_spec={"Duration": "-100000000"})
    assert agent.client.node[nid]["Drain"] is True
    assert "EvalIDs" in agent.client.node.drain_node_with_spec(nid, drain_spec={}, mark_eligible=True)
    assert agent.client.node[nid]["Drain"] is False
    node = agent.client.node.get_node(nid)
    assert node["SchedulingEligibility"] == "eligible" and node["DrainStrategy"] is None
    assert node["LastDrain"]["Status"] == "canceled"


def test_a_drain_of_an_empty_node_completes(agent: InProcessAgent) -> None:
    nid = node_id(agent)
    agent.client.node.drain_node_with_spec(nid, {"Deadline": 0, "IgnoreSystemJobs": True})
    wait_until(lambda: agent.client.node.get_node(nid)["LastDrain"]["Status"] == "complete", timeout=20,
               what="the drain complete")
    assert agent.client.node[nid]["Drain"] is False


def test_evaluate_creates_node_update_evaluations_for_the_nodes_jobs(agent: InProcessAgent) -> None:
    nid = node_id(agent)
    assert agent.client.node.evaluate_node(nid)["EvalIDs"] is None  # nothing on the node yet
    register(agent)
    wait_until(lambda: running(agent), timeout=20, what="the sleeper running")
    out = agent.client.node.evaluate_node(nid)
    [eval_id] = out["EvalIDs"]
    ev = agent.client.evaluation.get_evaluation(eval_id)
    assert ev["TriggeredBy"] == "node-update" and ev["NodeID"] == nid and ev["JobID"] == "sleeper"
    assert out["EvalCreateIndex"] == ev["CreateIndex"]
    wait_until(lambda: agent.client.evaluation.get_evaluation(eval_id)["Status"] == "complete", timeout=20,
               what="the evaluation processed")
    assert len(running(agent)) == 1  # nothing changed: no new placement


def test_purge_removes_the_node_and_the_live_client_joins_again(agent: InProcessAgent) -> None:
    nid = node_id(agent)
    agent.client.node.eligible_node(nid, ineligible=True)
    before = agent.client.node.get_node(nid)
    out = agent.client.node.purge_node(nid)
    assert out["NodeModifyIndex"] > before["ModifyIndex"]
    node = agent.client.node.get_node(nid)  # registered again, as a fresh registration
    assert node["ModifyIndex"] > out["NodeModifyIndex"] and node["SchedulingEligibility"] == "eligible"
    stream = requests.get(f"{agent.addr}/v1/event/stream", params={"topic": "Node", "index": out["Index"]},
                          stream=True, timeout=10)
    try:
        first = json.loads(next(stream.iter_lines()))
        assert [e["Type"] for e in first["Events"]] == ["NodeDeregistration"]
    finally:
        stream.close()


def _lost_in_stream(agent: InProcessAgent, index: int, alloc_id: str) -> dict[str, Any]:
    """The allocation as the event stream published it when the scheduler marked it lost."""
    stream = requests.get(f"{agent.addr}/v1/event/stream", params={"topic": "Allocation", "index": index},
                          stream=True, timeout=10)
    try:
        for line in stream.iter_lines():
            batch = json.loads(line or b"{}")
            # the purge ran the evaluation before answering: its events are buffered, so a heartbeat
            # (nothing more to send) means none marked the allocation lost
            assert batch, "no event marked the allocation lost"
            for e in batch.get("Events") or []:
                alloc = e["Payload"]["Allocation"]
                if alloc["ID"] == alloc_id and alloc["ClientStatus"] == "lost":
                    return dict(alloc)
    finally:
        stream.close()
    raise AssertionError("stream ended")


def test_a_purged_nodes_allocations_are_lost_and_replaced_once_it_rejoins(agent: InProcessAgent) -> None:
    """Nomad evaluates the purged node's jobs while it is gone: the allocation is lost, its
    replacement cannot be placed (no node at all: a blocked evaluation); the live client's
    re-registration unblocks it and the replacement runs."""
    register(agent)
    (old,) = wait_until(lambda: running(agent), 15)
    nid = node_id(agent)
    out = agent.client.node.purge_node(nid)
    (eval_id,) = out["EvalIDs"]
    lost = _lost_in_stream(agent, out["Index"], old["ID"])
    assert (lost["DesiredStatus"], lost["DesiredDescription"]) == ("stop", "alloc is lost since its node is down")
    ev = agent.client.evaluation.get_evaluation(eval_id)
    assert (ev["TriggeredBy"], ev["Status"], ev["NodeID"]) == ("node-update", "complete", nid)
    assert ev["FailedTGAllocs"]["g"]["NodesEvaluated"] == 0 and ev["FailedTGAllocs"]["g"]["NodesAvailable"] == {}
    blocked = agent.client.evaluation.get_evaluation(ev["BlockedEval"])
    assert blocked["PreviousEval"] == eval_id and blocked["TriggeredBy"] == "queued-allocs"
    # the node rejoined: the blocked evaluation ran again and placed the replacement
    (new,) = wait_until(lambda: running(agent), 15)
    assert new["ID"] != old["ID"] and new["NodeID"] == nid
    # placed by the blocked evaluation, to which the lost allocation is server-terminal: a fresh one (as in Nomad)
    assert agent.client.allocation.get_allocation(new["ID"])["PreviousAllocation"] in ("", None)
    assert agent.client.evaluation.get_evaluation(blocked["ID"])["Status"] == "complete"


@pytest.mark.parametrize(("path", "body", "status", "text"), [
    ("/v1/node/{nid}/drain", None, 400, "Request body is empty"),
    ("/v1/node/{nid}/drain", "{", 400, None),
    ("/v1/node/0000-missing/drain", {"DrainSpec": {"Deadline": 0}}, 500, "node not found"),
    ("/v1/node/0000-missing/eligibility", {"Eligibility": "eligible"}, 500, "node not found"),
    ("/v1/node/{nid}/eligibility", {"Eligibility": "maybe"}, 500, 'invalid scheduling eligibility "maybe"'),
    ("/v1/node/0000-missing/evaluate", None, 500, "node not found"),
    ("/v1/node/0000-missing/purge", None, 500, "node not found"),
])
def test_refusals_carry_nomads_status_and_text(agent: InProcessAgent, path: str, body: Any, status: int,
                                                text: str | None) -> None:
    url = agent.addr + path.format(nid=node_id(agent))
    r = requests.put(url, data=body, timeout=10) if isinstance(body, str) or body is None \
        else requests.put(url, json=body, timeout=10)
    assert r.status_code == status, r.text
    if text is not None:
        assert r.text.strip() == text
    assert requests.get(url, timeout=10).status_code == 405


def test_python_nomads_refusal_for_an_unknown_node(agent: InProcessAgent) -> None:
    assert refusal(lambda: agent.client.node.evaluate_node("0000-missing")) == (500, "node not found")


def test_an_operators_eligibility_outlives_an_agent_restart(tmp_path: Any) -> None:
    first = InProcessAgent(tmp_path)
    try:
        nid = node_id(first)
        first.client.node.eligible_node(nid, ineligible=True)
    finally:
        first.close()
    again = InProcessAgent(tmp_path)
    try:
        node = again.client.node.get_node(nid)
        assert node["SchedulingEligibility"] == "ineligible"
        assert node["Events"][-1]["Message"] == "Node marked as ineligible for scheduling"
    finally:
        again.close()


def test_node_list_with_resources(agent: InProcessAgent) -> None:
    [plain] = agent.client.nodes.get_nodes()
    [full] = agent.client.nodes.get_nodes(resources=True)
    assert "NodeResources" not in plain
    assert full["NodeResources"]["Memory"]["MemoryMB"] > 0 and "ReservedResources" in full


def test_a_scheduler_pass_racing_a_purge_still_finds_the_allocations_lost(
        agent: InProcessAgent, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler reads the node, then decides pending evaluations in their own transactions. A
    purge landing between the two must still leave the node's allocations lost: the purge decides
    its evaluations in its own transaction, and a pass holding the node it read before is not
    trusted once the state no longer has that node."""
    from nomadmesh.agent.nomad import evals

    register(agent)
    (old,) = wait_until(lambda: running(agent), 15)
    nid = node_id(agent)
    node_before = agent.ctx.state.get("node", nid)
    assert node_before is not None
    decide_pending = evals.process

    def scheduler_pass_wins_the_race(state: Any, eval_id: str, node: Any) -> None:
        decide_pending(state, eval_id, node_before.value)  # the pass that read the node before the purge
        decide_pending(state, eval_id, node)

    monkeypatch.setattr(evals, "process", scheduler_pass_wins_the_race)
    out = agent.client.node.purge_node(nid)
    for eval_id in out["EvalIDs"]:  # a pass that starts after the purge, with its stale read
        decide_pending(agent.ctx.state, eval_id, node_before.value)
    lost = agent.client.allocation.get_allocation(old["ID"])
    assert (lost["DesiredStatus"], lost["DesiredDescription"]) == ("stop", "alloc is lost since its node is down")

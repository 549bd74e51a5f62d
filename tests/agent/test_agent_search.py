"""Nomad's search API, raft configuration, scaling policies and metrics on the agent over HTTP, with
python-nomad where it has the call: prefix search per context (and `all`), fuzzy search through a
job's groups, tasks and commands, Nomad's refusals; the one-server raft configuration; no scaling
policies; the client's allocation gauges in /v1/metrics."""
from __future__ import annotations

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import sleeper_job
from support.waiting import wait_until

HCL = sleeper_job("search-web", group="frontend", task="server")


def test_prefix_and_fuzzy_search_find_the_job_and_its_parts(agent: InProcessAgent) -> None:
    out = agent.client.jobs.register_job({"Job": agent.client.jobs.parse(HCL)})
    found = agent.client.search.search("search", "jobs")
    assert (found["Matches"], found["Truncations"]) == ({"jobs": ["search-web"]}, {"jobs": False})
    every = agent.client.search.search(out["EvalID"][:4], "all")
    assert out["EvalID"] in every["Matches"]["evals"] and every["Matches"]["jobs"] == []
    assert set(every["Matches"]) >= {"allocs", "deployment", "evals", "jobs", "nodes", "namespaces", "vars"}
    fuzzy = agent.client.search.fuzzy_search("ERV", "jobs")["Matches"]  # case-insensitive, inside the names
    assert fuzzy == {"tasks": [{"ID": "server", "Scope": ["default", "search-web", "frontend"]}]}
    fuzzy = agent.client.search.fuzzy_search("web", "all")["Matches"]
    assert fuzzy["jobs"] == [{"ID": "search-web", "Scope": ["default", "search-web"]}]
    assert agent.client.search.fuzzy_search("slee", "jobs")["Matches"]["commands"][0]["ID"] == "sleep"


@pytest.mark.parametrize(("path", "body", "text"), [
    ("/v1/search/fuzzy", {"Text": "w", "Context": "jobs"}, "fuzzy search query must be at least 2 characters, got 1"),
    ("/v1/search", {"Prefix": "x", "Context": "job"}, "context must be one of ["),
])
def test_refusals_use_nomads_text(agent: InProcessAgent, path: str, body: dict[str, str], text: str) -> None:
    r = requests.post(f"{agent.addr}{path}", json=body, timeout=10)
    assert r.status_code == 500 and r.text.startswith(text), r.text


def test_raft_configuration_and_scaling_policies(agent: InProcessAgent) -> None:
    (server,) = agent.client.operator.get_configuration()["Servers"]
    assert (server["Leader"], server["Voter"], server["Node"]) == (True, True, "test-node.global")
    assert agent.client.scaling.get_scaling_policies() == []
    with pytest.raises(nx.URLNotFoundNomadException):
        agent.client.scaling.get_scaling_policy("0b4a5e1c-0000-4000-8000-000000000000")


def test_metrics_gauge_the_clients_allocations_and_refuse_prometheus(agent: InProcessAgent) -> None:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(HCL.replace("search-web", "metrics-web"))})

    def running() -> float:
        gauges = {g["Name"]: g for g in agent.client.metrics.get_metrics()["Gauges"]}
        return float(gauges["nomad.client.allocations.running"]["Value"])

    wait_until(lambda: running() == 1.0, 15, what="one running allocation in the gauges")
    gauge = next(g for g in agent.client.metrics.get_metrics()["Gauges"] if g["Name"] == "nomad.client.tasks.running")
    assert gauge["Value"] == 1.0 and gauge["Labels"]["datacenter"] == "dc1"
    r = requests.get(f"{agent.addr}/v1/metrics", params={"format": "prometheus"}, timeout=10)
    assert (r.status_code, r.text) == (415, "Prometheus is not enabled")

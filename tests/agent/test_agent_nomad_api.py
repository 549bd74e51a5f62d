"""The Nomad HTTP API over real HTTP with python-nomad, on an in-process agent (scheduler + Nomad app
served by uvicorn on a random port, as the agent serves it). Jobs here use docker or count 0, so nothing
needs the runtime; tests that really run tasks are in test_agent_nomad_run.py."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import DOCKER_HCL
from support.waiting import wait_until


def parse(agent: InProcessAgent, hcl: str) -> dict[str, Any]:
    return agent.client.jobs.parse(hcl, canonicalize=True)


def test_parse_register_get_list_versions(agent: InProcessAgent) -> None:
    job = parse(agent, DOCKER_HCL.replace("count = 2", "count = 0"))
    assert job["ID"] == "cache" and job["TaskGroups"][0]["Tasks"][0]["Driver"] == "docker"
    out = agent.client.jobs.register_job({"Job": job})
    assert out["EvalID"] and out["JobModifyIndex"] > 0
    got = agent.client.job.get_job("cache")
    assert got["Version"] == 0 and got["JobModifyIndex"] == out["JobModifyIndex"]
    assert [j["ID"] for j in agent.client.jobs.get_jobs()] == ["cache"]
    assert requests.get(f"{agent.addr}/v1/jobs", params={"prefix": "zzz"}).json() == []
    job["Meta"] = {"owner": "test"}
    agent.client.job.register_job("cache", {"Job": job})
    versions = agent.client.job.get_versions("cache")["Versions"]
    assert [v["Version"] for v in versions] == [1, 0]
    ev = wait_until(lambda: (e := agent.client.evaluation.get_evaluation(out["EvalID"]))["Status"] == "complete" and e)
    assert ev["TriggeredBy"] == "job-register" and ev["JobID"] == "cache"


def test_enforce_index_conflicts_are_500_with_nomads_text(agent: InProcessAgent) -> None:
    job = parse(agent, DOCKER_HCL.replace("count = 2", "count = 0"))
    first = agent.client.jobs.register_job({"Job": job, "EnforceIndex": True, "JobModifyIndex": 0})
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job, "EnforceIndex": True, "JobModifyIndex": 0})
    assert r.status_code == 500 and r.text.startswith("Enforcing job modify index 0: job already exists")
    stale = first["JobModifyIndex"] + 5
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job, "EnforceIndex": True, "JobModifyIndex": stale})
    assert r.status_code == 500
    assert f"Enforcing job modify index {stale}: job exists with conflicting job modify index" in r.text
    job["Meta"] = {"v": "2"}
    ok = requests.post(f"{agent.addr}/v1/jobs",
                       json={"Job": job, "EnforceIndex": True, "JobModifyIndex": first["JobModifyIndex"]})
    assert ok.status_code == 200 and agent.client.job.get_job("cache")["Version"] == 1


def test_docker_job_fails_placement_with_missing_drivers(agent: InProcessAgent) -> None:
    job = parse(agent, DOCKER_HCL)
    plan = agent.client.job.plan_job("cache", {"Job": job}, diff=True)
    assert plan["FailedTGAllocs"]["cache"]["ConstraintFiltered"] == {"missing drivers": 1}
    assert plan["Annotations"]["DesiredTGUpdates"]["cache"]["Place"] == 2
    assert plan["Diff"]["Type"] == "Added"
    out = agent.client.jobs.register_job({"Job": job})
    ev = wait_until(lambda: (e := agent.client.evaluation.get_evaluation(out["EvalID"]))["Status"] == "complete" and e)
    failed = ev["FailedTGAllocs"]["cache"]
    assert failed["ConstraintFiltered"] == {"missing drivers": 1} and failed["NodesEvaluated"] == 1
    assert agent.client.evaluation.get_evaluation(ev["BlockedEval"])["Status"] == "blocked"
    assert agent.client.job.get_allocations("cache") == []
    assert agent.client.job.get_job("cache")["Status"] == "pending"


def test_stop_then_purge(agent: InProcessAgent) -> None:
    job = parse(agent, DOCKER_HCL.replace("count = 2", "count = 0"))
    agent.client.jobs.register_job({"Job": job})
    out = agent.client.job.deregister_job("cache", purge=False)
    assert out["EvalID"]
    stopped = agent.client.job.get_job("cache")
    assert stopped["Stop"] is True and stopped["Version"] == 1
    wait_until(lambda: agent.client.job.get_job("cache")["Status"] == "dead")
    agent.client.job.deregister_job("cache", purge=True)
    with pytest.raises(nx.URLNotFoundNomadException):
        agent.client.job.get_job("cache")
    r = requests.delete(f"{agent.addr}/v1/job/cache")
    assert r.status_code == 404 and r.text.strip() == "job not found"


def test_bad_input_gets_nomads_codes_and_one_line(agent: InProcessAgent) -> None:
    r = requests.post(f"{agent.addr}/v1/jobs", data=b"{not json")
    assert r.status_code == 400 and "decode" in r.text.lower()
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": {"ID": "x", "TaskGroups": "nope"}})
    assert r.status_code == 400 and "TaskGroups" in r.text
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": {"ID": "x"}, "Bogus": 1})
    assert r.status_code == 400 and "Bogus" in r.text
    r = requests.post(f"{agent.addr}/v1/jobs/parse", json={"JobHCL": 'job "x" { group "g" { spread {} } }'})
    assert r.status_code == 400 and "spread" in r.text
    r = requests.post(f"{agent.addr}/v1/jobs", data=b"x" * (9 * 1024 * 1024))
    assert r.status_code == 413
    for path in ("/v1/allocation/00000000-0000-0000-0000-000000000000", "/v1/evaluation/nope-nope-nope",
                 "/v1/deployment/nope", "/v1/job/nope"):
        assert requests.get(agent.addr + path).status_code == 404, path
    assert requests.get(f"{agent.addr}/v1/jobs", params={"index": "x"}).status_code == 400
    r = requests.get(f"{agent.addr}/v1/client/fs/logs/nope", params={"task": "t", "type": "stdout"})
    assert r.status_code == 404 and "Unknown allocation" in r.text
    assert requests.get(f"{agent.addr}/v1/client/fs/logs/nope", params={"type": "stdout"}).status_code == 400
    assert agent.client.jobs.get_jobs() == []  # nothing half-written


def test_blocking_query_returns_on_change_and_times_out(agent: InProcessAgent) -> None:
    r = requests.get(f"{agent.addr}/v1/jobs")
    index = int(r.headers["X-Nomad-Index"])
    assert r.headers["X-Nomad-KnownLeader"] == "true"
    t0 = time.monotonic()
    r = requests.get(f"{agent.addr}/v1/jobs", params={"index": index, "wait": "300ms"})
    assert 0.25 <= time.monotonic() - t0 < 3 and int(r.headers["X-Nomad-Index"]) == index
    job = parse(agent, DOCKER_HCL.replace("count = 2", "count = 0"))
    threading.Timer(0.3, lambda: agent.client.jobs.register_job({"Job": job})).start()
    t0 = time.monotonic()
    r = requests.get(f"{agent.addr}/v1/jobs", params={"index": index, "wait": "10s"})
    assert time.monotonic() - t0 < 5
    assert int(r.headers["X-Nomad-Index"]) > index and [j["ID"] for j in r.json()] == ["cache"]


def test_node_agent_and_status(agent: InProcessAgent) -> None:
    nodes = agent.client.nodes.get_nodes()
    assert len(nodes) == 1 and nodes[0]["Status"] == "ready"
    node = agent.client.node.get_node(nodes[0]["ID"])
    assert set(node["Drivers"]) == {"raw_exec", "exec"}
    me = agent.client.agent.get_agent()
    assert me["config"]["Datacenter"] == "dc1" and me["config"]["NodeName"] == "test-node"
    assert requests.get(f"{agent.addr}/v1/agent/health").json()["client"]["ok"] is True
    assert json.loads(requests.get(f"{agent.addr}/v1/status/leader").text).endswith(":4647")


def test_parse_takes_variables(agent: InProcessAgent) -> None:
    hcl = 'variable "n" {\n  default = 1\n}\n' + DOCKER_HCL.replace("count = 2", "count = var.n")
    for variables in ({"n": "3"}, "n = 3"):
        r = requests.post(f"{agent.addr}/v1/jobs/parse", json={"JobHCL": hcl, "Variables": variables})
        assert r.status_code == 200, r.text
        assert r.json()["TaskGroups"][0]["Count"] == 3


def test_job_ids_with_slashes_and_newlines_are_readable_stoppable_and_purgeable(agent: InProcessAgent) -> None:
    """Nomad accepts any job ID without spaces or NUL; the Go client path-escapes it (%2F) and
    Nomad's router takes the ID up to a known suffix, so every job endpoint reaches such a job."""
    from urllib.parse import quote

    base = parse(agent, DOCKER_HCL.replace("count = 2", "count = 0"))
    for job_id in ("team", "team/web", "team/web/1", "crlf\r\njob"):
        r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": dict(base, ID=job_id, Name=job_id)}, timeout=10)
        assert r.status_code == 200, r.text
    for job_id in ("team/web", "crlf\r\njob"):
        url = f"{agent.addr}/v1/job/{quote(job_id, safe='')}"
        assert requests.get(url, timeout=10).json()["ID"] == job_id
        for suffix in ("versions", "allocations", "evaluations", "summary", "deployments"):
            assert requests.get(f"{url}/{suffix}", timeout=10).status_code == 200, suffix
        assert [v["ID"] for v in requests.get(f"{url}/versions", timeout=10).json()["Versions"]] == [job_id]
    # Purging "team" leaves "team/web" and "team/web/1" (their versions share the key prefix).
    assert requests.delete(f"{agent.addr}/v1/job/team?purge=true", timeout=10).status_code == 200
    for job_id in ("team/web", "team/web/1"):
        versions = requests.get(f"{agent.addr}/v1/job/{quote(job_id, safe='')}/versions", timeout=10)
        assert [v["ID"] for v in versions.json()["Versions"]] == [job_id]
    # Stop, then purge, by the escaped ID (and the raw one, which Nomad's router takes as well).
    url = f"{agent.addr}/v1/job/{quote('team/web', safe='')}"
    assert requests.delete(url, timeout=10).status_code == 200
    assert requests.get(url, timeout=10).json()["Stop"] is True
    assert requests.delete(f"{url}?purge=true", timeout=10).status_code == 200
    assert requests.get(url, timeout=10).status_code == 404
    assert requests.delete(f"{agent.addr}/v1/job/team/web/1?purge=true", timeout=10).status_code == 200
    assert requests.delete(f"{agent.addr}/v1/job/{quote('crlf' + chr(13) + chr(10) + 'job', safe='')}?purge=true",
                           timeout=10).status_code == 200
    assert [j["ID"] for j in requests.get(f"{agent.addr}/v1/jobs", timeout=10).json()] == []
    # What Nomad refuses is refused with its words.
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": dict(base, ID="has space", Name="x")}, timeout=10)
    assert r.status_code >= 400 and "Job ID contains a space" in r.text


CONNECT_TCP_HCL = """job "tcpc" {
  datacenters = ["dc1"]
  group "tcpc" {
    count = 0
    network {
      mode = "bridge"
      port "db" { to = 6379 }
    }
    service {
      name = "tcpc"
      port = "6379"
      connect { sidecar_service {} }
      check {
        name     = "ping"
        type     = "tcp"
        port     = "db"
        interval = "10s"
        timeout  = "2s"
      }
    }
    task "tcpc" {
      driver = "docker"
      config { image = "redis:7" }
    }
  }
}
"""


def test_a_tcp_check_on_a_connect_service_is_refused_with_nomads_error(agent: InProcessAgent) -> None:
    # Nomad refuses it whatever port the check names (hashicorp/nomad#6141): never a never-healthy job.
    job = parse(agent, CONNECT_TCP_HCL)
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job})
    assert r.status_code == 500, r.text
    assert 'Service "tcpc" check "ping" invalid: tcp checks are not valid for Connect enabled services' in r.text
    assert requests.get(f"{agent.addr}/v1/job/tcpc").status_code == 404

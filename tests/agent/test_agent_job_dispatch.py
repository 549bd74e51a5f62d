"""Parameterized jobs and POST/PUT /v1/job/:id/dispatch as Nomad answers them, with python-nomad over real
HTTP on an in-process agent: the parent is never placed, each dispatch registers a child that really runs
with the payload in its dispatch_payload file and the dispatch meta in its environment."""
from __future__ import annotations

import base64
import re
from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.waiting import wait_until

PARENT = """
job "proc" {
  type = "batch"
  meta { team = "core" }
  parameterized {
    payload       = "%(payload)s"
    meta_required = ["who"]
    meta_optional = ["why"]
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      dispatch_payload { file = "in/payload.txt" }
      config {
        command = "/bin/sh"
        args    = ["-c", "cat local/in/payload.txt 2>/dev/null; echo \\" who=$NOMAD_META_who team=$NOMAD_META_team\\""]
      }
    }
  }
}
"""


def register_parent(agent: InProcessAgent, payload: str = "optional") -> dict[str, Any]:
    job = agent.client.jobs.parse(PARENT % {"payload": payload}, canonicalize=True)
    out: dict[str, Any] = agent.client.jobs.register_job({"Job": job})
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text.strip()


def stdout_of_child(agent: InProcessAgent, child: str) -> str:
    alloc = wait_until(lambda: next((a for a in agent.client.job.get_allocations(child)
                                     if a["ClientStatus"] == "complete"), None), 20)
    return requests.get(f"{agent.addr}/v1/client/fs/logs/{alloc['ID']}", timeout=10,
                        params={"task": "t", "type": "stdout", "plain": "true"}).text


def test_the_parent_is_never_placed(agent: InProcessAgent) -> None:
    out = register_parent(agent)
    assert out["EvalID"] == "" and out["EvalCreateIndex"] == 0
    job = agent.client.job.get_job("proc")
    assert job["ParameterizedJob"] == {"Payload": "optional", "MetaRequired": ["who"], "MetaOptional": ["why"]}
    assert job["TaskGroups"][0]["Tasks"][0]["DispatchPayload"] == {"File": "in/payload.txt"}
    wait_until(lambda: agent.client.job.get_job("proc")["Status"] == "running")
    assert agent.client.job.get_allocations("proc") == [] and agent.client.job.get_evaluations("proc") == []
    assert next(j for j in agent.client.jobs.get_jobs() if j["ID"] == "proc")["ParameterizedJob"] is True
    assert refusal(lambda: agent.client.job.evaluate_job("proc")) == (500, "can't evaluate parameterized job")


def test_dispatch_runs_a_child_with_the_payload_and_meta(agent: InProcessAgent) -> None:
    register_parent(agent)
    out = agent.client.job.dispatch_job("proc", payload=b64(b"hello payload"), meta={"who": "alice"})
    child = out["DispatchedJobID"]
    assert re.fullmatch(r"proc/dispatch-\d+-[0-9a-f]{8}", child), child
    assert out["EvalID"] and out["EvalCreateIndex"] == out["JobCreateIndex"] == out["Index"]
    job = agent.client.job.get_job(child)
    assert job["ParentID"] == "proc" and job["Dispatched"] is True and job["Name"] == child
    assert job["Meta"] == {"team": "core", "who": "alice"} and job["Payload"]
    assert stdout_of_child(agent, child) == "hello payload who=alice team=core\n"
    assert agent.client.job.get_allocations("proc") == []  # the parent still has none
    without = agent.client.job.dispatch_job("proc", meta={"who": "bob"})["DispatchedJobID"]
    assert stdout_of_child(agent, without) == " who=bob team=core\n"
    # the parent's summary counts its children by status, as Nomad's does
    wait_until(lambda: agent.client.job.get_summary("proc")["Children"] == {"Pending": 0, "Running": 0, "Dead": 2})
    stub = next(j for j in agent.client.jobs.get_jobs() if j["ID"] == "proc")
    assert stub["JobSummary"]["Children"]["Dead"] == 2


def test_an_idempotency_token_returns_the_existing_child(agent: InProcessAgent) -> None:
    register_parent(agent)
    url = f"{agent.addr}/v1/job/proc/dispatch"
    body = {"Meta": {"who": "alice"}, "IdempotencyToken": "once"}
    first = requests.put(url, json=body, timeout=10).json()
    again = requests.put(url, json=body, timeout=10).json()
    assert again["DispatchedJobID"] == first["DispatchedJobID"] and again["EvalID"] == ""
    by_query = requests.post(url, params={"idempotency_token": "once"}, json={"Meta": {"who": "x"}}, timeout=10)
    assert by_query.json()["DispatchedJobID"] == first["DispatchedJobID"]
    other = requests.post(url, json={"Meta": {"who": "alice"}, "IdempotencyToken": "twice"}, timeout=10).json()
    assert other["DispatchedJobID"] != first["DispatchedJobID"]
    children = [j["ID"] for j in agent.client.jobs.get_jobs() if j["ParentID"] == "proc"]
    assert sorted(children) == sorted([first["DispatchedJobID"], other["DispatchedJobID"]])


def test_dispatch_refusals(agent: InProcessAgent) -> None:
    register_parent(agent, payload="required")
    dispatch = agent.client.job.dispatch_job
    assert refusal(lambda: dispatch("proc", meta={"who": "a"})) == (
        500, "Payload is not provided but required by parameterized job")
    assert refusal(lambda: dispatch("proc", payload=b64(b"x"), meta={"who": "a", "zz": "1", "aa": "2"})) == (
        500, "Dispatch request included unpermitted metadata keys: [aa zz]")
    assert refusal(lambda: dispatch("proc", payload=b64(b"x"), meta={"why": "because"})) == (
        500, "Dispatch did not provide required meta keys: [who]")
    assert refusal(lambda: dispatch("proc", payload=b64(b"x" * (16 * 1024 + 1)), meta={"who": "a"})) == (
        500, "Payload exceeds maximum size; 16385 > 16384")
    assert refusal(lambda: dispatch("nosuch", meta={"who": "a"})) == (500, "parameterized job not found")
    url = f"{agent.addr}/v1/job/proc/dispatch"
    r = requests.post(url, json={"JobID": "other"}, timeout=10)
    assert (r.status_code, r.text.strip()) == (400, "Job ID does not match")
    assert requests.post(url, json={"Payload": "not base64!"}, timeout=10).status_code == 400
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(
        PARENT.replace('payload       = "%(payload)s"', 'payload = "forbidden"').replace('"proc"', '"quiet"'),
        canonicalize=True)})
    assert refusal(lambda: dispatch("quiet", payload=b64(b"x"), meta={"who": "a"})) == (
        500, "Payload provided but forbidden by parameterized job")
    agent.client.job.deregister_job("quiet")
    assert refusal(lambda: dispatch("quiet", meta={"who": "a"})) == (500, 'Specified job "quiet" is stopped')


def test_a_plain_job_is_not_dispatchable_and_cannot_turn_parameterized(agent: InProcessAgent) -> None:
    plain = agent.client.jobs.parse(re.sub(r"parameterized \{[^}]*\}", "", PARENT), canonicalize=True)
    assert plain["ParameterizedJob"] is None
    agent.client.jobs.register_job({"Job": plain})
    assert refusal(lambda: agent.client.job.dispatch_job("proc")) == (
        500, 'Specified job "proc" is not a parameterized job')
    assert refusal(lambda: register_parent(agent)) == (
        500, "cannot update non-parameterized job to being parameterized")


def test_validate_and_register_refuse_a_bad_parameterized_block(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(PARENT % {"payload": "sometimes"}, canonicalize=True)
    job["Type"] = "service"
    out = requests.put(f"{agent.addr}/v1/validate/job", json={"Job": job}, timeout=10).json()
    assert 'Parameterized job can only be used with "batch" or "sysbatch" scheduler' in out["ValidationErrors"]
    assert 'Unknown payload requirement: "sometimes"' in out["ValidationErrors"]
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 500 and "Unknown payload requirement" in r.text


def test_dispatch_payload_endpoint_takes_the_raw_body(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(re.sub(r"meta_required = \[\"who\"\]", "", PARENT % {"payload": "required"}),
                                  canonicalize=True)
    agent.client.jobs.register_job({"Job": job})
    r = requests.put(f"{agent.addr}/v1/job/proc/dispatch/payload", data=b"raw bytes", timeout=10)
    assert r.status_code == 200, r.text
    assert stdout_of_child(agent, r.json()["DispatchedJobID"]) == "raw bytes who= team=core\n"
    empty = requests.post(f"{agent.addr}/v1/job/proc/dispatch/payload", timeout=10)
    assert (empty.status_code, empty.text) == (500, "Payload is not provided but required by parameterized job")

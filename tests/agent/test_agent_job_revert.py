"""PUT/POST /v1/job/:id/revert and GET /v1/job/:id/versions as Nomad answers them, driven with
python-nomad's own `revert_job` / `get_versions` over real HTTP on an in-process agent. Jobs use
count 0, so nothing needs the runtime."""
from __future__ import annotations

from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import DOCKER_HCL

HCL = DOCKER_HCL.replace("count = 2", "count = 0")


def source(v: int) -> str:
    return HCL.replace('driver = "docker"', f'driver = "docker"\n      meta {{ v = "{v}" }}')


def register(agent: InProcessAgent, text: str) -> dict[str, Any]:
    job = agent.client.jobs.parse(text, canonicalize=True)
    body = {"Job": job, "Submission": {"Source": text, "Format": "hcl2", "Variables": ""}}
    r = requests.post(f"{agent.addr}/v1/jobs", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def three_versions(agent: InProcessAgent) -> None:
    for v in range(3):
        register(agent, source(v))
    assert agent.client.job.get_job("cache")["Version"] == 2


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text.strip()


def test_revert_registers_a_copy_of_the_old_version_as_a_new_one(agent: InProcessAgent) -> None:
    three_versions(agent)
    before = agent.client.job.get_job("cache")
    out = agent.client.job.revert_job("cache", 0, enforce_prior_version=2)
    assert set(out) >= {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Index", "Warnings"}
    assert out["EvalID"] and out["JobModifyIndex"] > before["JobModifyIndex"]
    job = agent.client.job.get_job("cache")
    assert job["Version"] == 3 and job["JobModifyIndex"] == out["JobModifyIndex"] and job["Stable"] is False
    assert job["TaskGroups"][0]["Tasks"][0]["Meta"] == {"v": "0"}
    # The new version's submission is the reverted version's source, as Nomad's state store keeps it.
    sub = requests.get(f"{agent.addr}/v1/job/cache/submission", params={"version": 3}, timeout=10).json()
    assert sub["Source"] == source(0) and sub["Version"] == 3
    versions = agent.client.job.get_versions("cache")["Versions"]
    assert [v["Version"] for v in versions] == [3, 2, 1, 0]  # newest first, as Nomad lists them
    assert versions[0]["TaskGroups"][0]["Tasks"][0]["Meta"] == {"v": "0"}
    evaluation = agent.client.evaluation.get_evaluation(out["EvalID"])
    assert evaluation["JobID"] == "cache" and evaluation["TriggeredBy"] == "job-register"


def test_revert_without_enforce_and_over_put(agent: InProcessAgent) -> None:
    three_versions(agent)
    r = requests.put(f"{agent.addr}/v1/job/cache/revert", json={"JobID": "cache", "JobVersion": 1}, timeout=10)
    assert r.status_code == 200, r.text
    assert int(r.headers["X-Nomad-Index"]) == r.json()["Index"]
    assert agent.client.job.get_job("cache")["TaskGroups"][0]["Tasks"][0]["Meta"] == {"v": "1"}


def test_refusals_carry_nomads_status_and_text(agent: InProcessAgent) -> None:
    three_versions(agent)
    job = agent.client.job
    assert refusal(lambda: job.revert_job("nosuch", 0)) == (500, 'job "nosuch" not found')
    assert refusal(lambda: job.revert_job("cache", 2)) == (500, "can't revert to current version")
    assert refusal(lambda: job.revert_job("cache", 9)) == (
        500, 'job "cache" in namespace "default" at version 9 not found')
    assert refusal(lambda: job.revert_job("cache", 0, enforce_prior_version=1)) == (
        500, "Current job has version 2; enforcing version 1")
    url = f"{agent.addr}/v1/job/cache/revert"
    for body, text in (({"JobVersion": 0}, "JobID must be specified"),
                       ({"JobID": "other", "JobVersion": 0}, "Job ID does not match")):
        r = requests.post(url, json=body, timeout=10)
        assert (r.status_code, r.text.strip()) == (400, text)
    assert requests.post(url, json={"JobID": "cache", "JobVersion": "0"}, timeout=10).status_code == 400
    # Nothing refused left a trace: still version 2 with its own spec.
    assert job.get_job("cache")["Version"] == 2
    assert [v["Version"] for v in job.get_versions("cache")["Versions"]] == [2, 1, 0]


def test_a_purged_job_cannot_be_reverted(agent: InProcessAgent) -> None:
    three_versions(agent)
    agent.client.job.deregister_job("cache", purge=True)
    assert refusal(lambda: agent.client.job.revert_job("cache", 0)) == (500, 'job "cache" not found')


def test_reverting_to_a_version_with_the_current_spec_writes_no_new_version(agent: InProcessAgent) -> None:
    register(agent, source(0))
    register(agent, source(1))
    again = source(0).replace("job", "# the same job, written again\njob", 1)  # same spec, other text
    register(agent, again)
    assert agent.client.job.get_job("cache")["Version"] == 2
    out = agent.client.job.revert_job("cache", 0)
    assert out["EvalID"]  # Nomad still evaluates, as a re-register of an unchanged job does
    assert agent.client.job.get_job("cache")["Version"] == 2
    sub = requests.get(f"{agent.addr}/v1/job/cache/submission", params={"version": 2}, timeout=10).json()
    assert sub["Source"] == again  # the current version's own source is left as it was

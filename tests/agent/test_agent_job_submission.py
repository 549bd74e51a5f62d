"""GET /v1/job/:id/submission: the source a job version was registered with (Nomad 1.6+), kept per
version, over real HTTP on an in-process agent. Jobs use count 0, so nothing needs the runtime."""
from __future__ import annotations

from typing import Any

import requests

from support.agents import InProcessAgent
from support.nomad_jobs import DOCKER_HCL

HCL = DOCKER_HCL.replace("count = 2", "count = 0")


def register(agent: InProcessAgent, source: str, flags: dict[str, str] | None = None) -> dict[str, Any]:
    job = agent.client.jobs.parse(source, canonicalize=True)
    submission = {"Source": source, "Format": "hcl2", "VariableFlags": flags, "Variables": ""}
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job, "Submission": submission})
    assert r.status_code == 200, r.text
    return r.json()


def submission(agent: InProcessAgent, job_id: str, version: Any) -> requests.Response:
    return requests.get(f"{agent.addr}/v1/job/{job_id}/submission", params={"version": version})


def test_each_version_keeps_the_source_it_was_registered_with(agent: InProcessAgent) -> None:
    first = register(agent, HCL, {"project_dir": "/a"})
    second_source = HCL.replace('driver = "docker"', 'driver = "docker"\n      meta { v = "2" }')
    assert second_source != HCL
    register(agent, second_source)
    v0, v1 = submission(agent, "cache", 0), submission(agent, "cache", 1)
    assert v0.status_code == 200 and v1.status_code == 200
    assert v0.json() == {"Source": HCL, "Format": "hcl2", "VariableFlags": {"project_dir": "/a"}, "Variables": "",
                         "Namespace": "default", "JobID": "cache", "Version": 0,
                         "JobModifyIndex": first["JobModifyIndex"]}
    assert v1.json()["Source"] == second_source and v1.json()["Version"] == 1


def test_missing_source_and_bad_version_answer_like_nomad(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(HCL, canonicalize=True)
    agent.client.jobs.register_job({"Job": job})  # no Submission: Nomad keeps no source
    r = submission(agent, "cache", 0)
    assert (r.status_code, r.text.strip()) == (404, "job source not found")
    assert submission(agent, "nosuch", 0).status_code == 404
    for bad in ("", "x", "-1"):
        r = submission(agent, "cache", bad)
        assert (r.status_code, r.text.strip()) == (400, "Unable to parse job submission version parameter")


def test_purge_forgets_the_sources(agent: InProcessAgent) -> None:
    register(agent, HCL)
    assert submission(agent, "cache", 0).status_code == 200
    assert requests.delete(f"{agent.addr}/v1/job/cache", params={"purge": "true"}).status_code == 200
    assert submission(agent, "cache", 0).status_code == 404


def test_a_malformed_submission_is_refused_and_nothing_is_stored(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(HCL, canonicalize=True)
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job, "Submission": {"Source": 5}})
    assert r.status_code == 400
    assert requests.get(f"{agent.addr}/v1/job/cache").status_code == 404

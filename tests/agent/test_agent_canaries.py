"""Nomad canaries on the dev agent, driven with python-nomad and py-consul over real HTTP: `update.canary`
places the new version beside the old allocations, their services carry `canary_tags` / `canary_meta`
in Consul's catalog, `/v1/deployment/promote/:id` (all or by group) rolls the rest, `auto_promote`
promotes by itself, `/v1/deployment/fail/:id` stops the canaries and rolls back with `auto_revert`.

One agent for the module; each test uses a job of its own. Health is `task_states` with
min_healthy_time 0, so a deployment moves as soon as its tasks run.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import consul
import nomad
import nomad.api.exceptions as nx
import pytest
import requests

from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import target_from_env
from nomadmesh.deploy.watch import JobWatch
from nomadmesh.progress import SilentProgress
from support.agents import RunningAgent, clients
from support.nomad_jobs import VERSIONED_TASK
from support.waiting import wait_until

JOB = """
job "%(job)s" {
  group "g" {
    count = %(count)d
    network {
      port "http" {}
    }
    update {
      max_parallel     = 1
      canary           = %(canary)d
      health_check     = "%(check)s"
      min_healthy_time = "0s"
      healthy_deadline = "1m"
      auto_promote     = %(promote)s
      auto_revert      = %(revert)s
    }
    service {
      name        = "%(job)s"
      port        = "http"
      tags        = ["v%(v)s"]
      canary_tags = ["canary"]
      meta        = { track = "stable" }
      canary_meta = { track = "canary" }
    }
""" + VERSIONED_TASK + """  }
}
"""


@pytest.fixture(scope="module")
def apis(module_agent: RunningAgent) -> tuple[nomad.Nomad, consul.Consul, str]:
    n, c = clients(module_agent)
    return n, c, module_agent.nomad_addr


def job_spec(n: nomad.Nomad, job: str, v: str, count: int = 2, canary: int = 1, check: str = "task_states",
             promote: bool = False, revert: bool = False) -> dict[str, Any]:
    text = JOB % {"job": job, "count": count, "canary": canary, "check": check, "v": v,
                  "promote": str(promote).lower(), "revert": str(revert).lower()}
    spec: dict[str, Any] = n.jobs.parse(text, canonicalize=True)
    return spec


def register(n: nomad.Nomad, spec: dict[str, Any]) -> None:
    n.jobs.register_job({"Job": spec})


def deployment_of(n: nomad.Nomad, job: str, version: int) -> dict[str, Any]:
    return wait_until(lambda: next((d for d in n.job.get_deployments(job) if d["JobVersion"] == version), None), 20)


def deployment_when(n: nomad.Nomad, dep_id: str, status: str) -> dict[str, Any]:
    return wait_until(lambda: (d := n.deployment.get_deployment(dep_id))["Status"] == status and d, 30)


def live(n: nomad.Nomad, job: str) -> list[dict[str, Any]]:
    return [a for a in n.job.get_allocations(job) if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def stable_v0(n: nomad.Nomad, job: str, **kw: Any) -> list[dict[str, Any]]:
    """Version 0 running and stable (its deployment successful); returns its allocations."""
    register(n, job_spec(n, job, "0", **kw))
    deployment_when(n, deployment_of(n, job, 0)["ID"], "successful")
    wait_until(lambda: n.job.get_job(job)["Stable"], 20)
    return live(n, job)


def healthy_canaries(n: nomad.Nomad, dep_id: str, want: int) -> dict[str, Any]:
    """The deployment once `want` canaries are placed and healthy."""
    def ready() -> dict[str, Any] | None:
        d = n.deployment.get_deployment(dep_id)
        g = d["TaskGroups"]["g"]
        return d if len(g["PlacedCanaries"] or []) == want and g["HealthyAllocs"] >= want else None
    return wait_until(ready, 30)


def catalog(c: consul.Consul, name: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Alloc ID -> (Tags, ServiceMeta) of `name`'s instances in Consul's catalog."""
    _index, nodes = c.catalog.service(name)
    return {_alloc_of(s["ServiceID"]): (s["ServiceTags"], s["ServiceMeta"]) for s in nodes}


def catalog_when(c: consul.Consul, name: str, ready: Any) -> dict[str, tuple[list[str], dict[str, str]]]:
    return wait_until(lambda: (s := catalog(c, name)) and ready(s) and s, 20)


def _alloc_of(service_id: str) -> str:
    # _nomad-task-<alloc uuid>-group-g-<service>-http: the uuid is the 5 dash-separated fields after the prefix.
    return "-".join(service_id.removeprefix("_nomad-task-").split("-")[:5])


def refusal(call: Any) -> tuple[int, str]:
    with pytest.raises(nx.BaseNomadException) as caught:
        call()
    resp = caught.value.nomad_resp
    return resp.status_code, resp.text


def test_canary_beside_the_old_allocations_then_promoted(apis: tuple[nomad.Nomad, consul.Consul, str]) -> None:
    n, c, _addr = apis
    old = stable_v0(n, "canaried")
    v1 = job_spec(n, "canaried", "1")
    plan = n.job.plan_job("canaried", {"Job": v1})
    assert plan["Annotations"]["DesiredTGUpdates"]["g"]["Canary"] == 1
    assert plan["Annotations"]["DesiredTGUpdates"]["g"]["DestructiveUpdate"] == 0

    register(n, v1)
    dep = healthy_canaries(n, deployment_of(n, "canaried", 1)["ID"], 1)
    assert dep["Status"] == "running"
    assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
    g = dep["TaskGroups"]["g"]
    assert (g["DesiredCanaries"], g["Promoted"], g["DesiredTotal"]) == (1, False, 2)
    assert g["RequireProgressBy"].endswith("Z")  # a Go time.Time, as Nomad writes it
    [canary_id] = g["PlacedCanaries"]
    canary = n.allocation.get_allocation(canary_id)
    assert canary["JobVersion"] == 1 and canary["DeploymentStatus"]["Canary"] is True
    running = {a["ID"]: a["JobVersion"] for a in live(n, "canaried")}
    assert running == {**{a["ID"]: 0 for a in old}, canary_id: 1}  # the old ones untouched
    again = n.job.plan_job("canaried", {"Job": v1})["Annotations"]["DesiredTGUpdates"]["g"]
    assert (again["Canary"], again["Stop"], again["DestructiveUpdate"], again["Ignore"]) == (0, 0, 0, 3)
    seen = catalog_when(c, "canaried", lambda s: len(s) == 3)
    assert seen[canary_id] == (["canary"], {"track": "canary", "external-source": "nomad"})
    assert all(seen[a["ID"]] == (["v0"], {"track": "stable", "external-source": "nomad"}) for a in old)

    out = n.deployment.promote_deployment_all(dep["ID"])
    assert out["EvalID"] and out["DeploymentModifyIndex"] == out["Index"]
    promoted = n.deployment.get_deployment(dep["ID"])
    assert promoted["TaskGroups"]["g"]["Promoted"] is True
    assert promoted["StatusDescription"] in ("Deployment is running", "Deployment completed successfully")
    deployment_when(n, dep["ID"], "successful")
    after = wait_until(lambda: (a := live(n, "canaried")) and len(a) == 2 and all(
        x["JobVersion"] == 1 for x in a) and a, 30)
    assert canary_id in {a["ID"] for a in after}  # the canary is one of the new version's allocations
    assert n.allocation.get_allocation(canary_id)["DeploymentStatus"]["Canary"] is False
    tags = catalog_when(c, "canaried", lambda s: len(s) == 2 and all(t == ["v1"] for t, _m in s.values()))
    assert all(m == {"track": "stable", "external-source": "nomad"} for _t, m in tags.values())
    assert n.job.get_job("canaried")["Stable"] is True


def test_promote_refusals_and_fail_without_auto_revert(apis: tuple[nomad.Nomad, consul.Consul, str]) -> None:
    n, _c, addr = apis
    old = stable_v0(n, "refused", count=1)
    register(n, job_spec(n, "refused", "1", count=1, check="manual"))  # canaries healthy only when marked
    dep = deployment_of(n, "refused", 1)
    wait_until(lambda: n.deployment.get_deployment(dep["ID"])["TaskGroups"]["g"]["PlacedCanaries"], 20)
    assert refusal(lambda: n.deployment.promote_deployment_all(dep["ID"])) == (
        500, '1 error occurred:\n\t* Task group "g" has 0/1 healthy allocations\n\n')
    assert refusal(lambda: n.deployment.promote_deployment_groups(dep["ID"], ["g"]))[1].endswith(
        'Task group "g" has 0/1 healthy allocations\n\n')
    assert refusal(lambda: n.deployment.promote_deployment_all("nosuch")) == (500, "deployment not found")
    url = f"{addr}/v1/deployment/promote/{dep['ID']}"
    for body, text in (({"All": True}, "DeploymentID must be specified"),
                       ({"DeploymentID": "other", "All": True}, "Deployment ID does not match")):
        r = requests.post(url, json=body, timeout=10)
        assert (r.status_code, r.text.strip()) == (400, text)

    out = n.deployment.fail_deployment(dep["ID"])
    assert out["RevertedJobVersion"] is None
    failed = n.deployment.get_deployment(dep["ID"])
    assert (failed["Status"], failed["StatusDescription"]) == ("failed", "Deployment marked as failed")
    [canary_id] = failed["TaskGroups"]["g"]["PlacedCanaries"]
    wait_until(lambda: n.allocation.get_allocation(canary_id)["DesiredStatus"] == "stop", 20)
    assert [a["ID"] for a in live(n, "refused")] == [old[0]["ID"]]  # the old version keeps serving
    assert n.job.get_job("refused")["Version"] == 1
    assert refusal(lambda: n.deployment.promote_deployment_all(dep["ID"])) == (
        500, "can't promote terminal deployment")


def test_auto_promote(apis: tuple[nomad.Nomad, consul.Consul, str]) -> None:
    n, _c, _addr = apis
    stable_v0(n, "autoprom", promote=True)
    spec = job_spec(n, "autoprom", "1", promote=True)
    # Healthy no sooner than 3 s: with 0 s the promotion could come before the first read of the deployment.
    spec["TaskGroups"][0]["Update"]["MinHealthyTime"] = 3_000_000_000
    register(n, spec)
    dep = deployment_of(n, "autoprom", 1)
    assert dep["StatusDescription"] == "Deployment is running pending automatic promotion"
    done = deployment_when(n, dep["ID"], "successful")
    assert done["TaskGroups"]["g"]["Promoted"] is True and len(done["TaskGroups"]["g"]["PlacedCanaries"]) == 1
    wait_until(lambda: (a := live(n, "autoprom")) and len(a) == 2 and all(x["JobVersion"] == 1 for x in a), 30)


def test_fail_rolls_back_with_auto_revert(apis: tuple[nomad.Nomad, consul.Consul, str]) -> None:
    n, _c, _addr = apis
    old = stable_v0(n, "reverted", revert=True)
    register(n, job_spec(n, "reverted", "1", revert=True))
    dep = healthy_canaries(n, deployment_of(n, "reverted", 1)["ID"], 1)
    out = n.deployment.fail_deployment(dep["ID"])
    assert out["RevertedJobVersion"] == 0
    failed = n.deployment.get_deployment(dep["ID"])
    assert failed["StatusDescription"] == "Deployment marked as failed - rolling back to job version 0"
    job = n.job.get_job("reverted")
    assert job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Env"] == {"V": "0"}
    [canary_id] = failed["TaskGroups"]["g"]["PlacedCanaries"]
    wait_until(lambda: n.allocation.get_allocation(canary_id)["DesiredStatus"] == "stop", 20)
    # The old allocations serve on, updated in place to version 2 (the same spec as version 0).
    wait_until(lambda: sorted((a["ID"], a["JobVersion"]) for a in live(n, "reverted"))
               == sorted((a["ID"], 2) for a in old), 30)


def test_a_crashing_canary_fails_the_deployment_and_auto_reverts(apis: tuple[nomad.Nomad, consul.Consul, str]) -> None:
    n, _c, _addr = apis
    old = stable_v0(n, "crashing", count=1, revert=True)
    crash = job_spec(n, "crashing", "1", count=1, revert=True)
    crash["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "false"}
    crash["TaskGroups"][0]["RestartPolicy"].update(Attempts=0, Mode="fail")
    # With min_healthy_time 0 a task that exits within milliseconds can be marked healthy first (as in Nomad,
    # health once set is kept): the crash must land inside the window for the canary to count as unhealthy.
    crash["TaskGroups"][0]["Update"]["MinHealthyTime"] = 3_000_000_000
    register(n, crash)
    failed = deployment_when(n, deployment_of(n, "crashing", 1)["ID"], "failed")
    assert failed["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    assert n.job.get_job("crashing")["Version"] == 2
    wait_until(lambda: [(a["ID"], a["JobVersion"]) for a in live(n, "crashing")] == [(old[0]["ID"], 2)], 30)


@pytest.mark.parametrize("auto_promote", [False, True], ids=["manual", "auto_promote"])
def test_deploy_watch_ends_when_healthy_canaries_wait_for_promotion(
        module_agent: RunningAgent, apis: tuple[nomad.Nomad, consul.Consul, str], auto_promote: bool) -> None:
    """`nomadmesh deploy`'s watch of a canary update ends, as `nomad job run`'s monitor does, once the
    canaries are healthy and the deployment waits for a person; an auto_promote one is watched to the end."""
    n, _c, _addr = apis
    job = f"watched-{'auto' if auto_promote else 'manual'}"
    stable_v0(n, job, promote=auto_promote)
    eval_id = n.jobs.register_job({"Job": job_spec(n, job, "1", promote=auto_promote)})["EvalID"]
    api = NomadAPI(target_from_env({}, nomad_addr=module_agent.nomad_addr, consul_addr=module_agent.consul_addr))
    result = JobWatch(api, job, "update", SilentProgress(), time.monotonic() + 20, threading.Event(), 1).run(eval_id)
    assert result.ok, result.error
    dep = n.deployment.get_deployment(result.deployment_id)
    if auto_promote:
        assert (result.deployment_status, dep["Status"]) == ("successful", "successful")
    else:
        assert result.deployment_status == "running"
        assert dep["StatusDescription"] == "Deployment is running but requires manual promotion"
        assert dep["TaskGroups"]["g"]["HealthyAllocs"] == 1 and not dep["TaskGroups"]["g"]["Promoted"]

"""Nomad namespaces on the real agent over HTTP, with python-nomad: create/list/read/delete, Nomad's
refusals, and jobs isolated per namespace (register, reads, lists with `*`)."""
from __future__ import annotations

import nomad
import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.nomad_jobs import sleeper_job
from support.waiting import wait_until

HCL = sleeper_job("web", "  %s\n")


def _text(r: requests.Response) -> str:
    return r.text.rstrip("\n")  # the agent ends its plain-text errors with a newline


def _in(agent: InProcessAgent, namespace: str) -> nomad.Nomad:
    return nomad.Nomad(host="127.0.0.1", port=int(agent.addr.rsplit(":", 1)[1]), namespace=namespace, timeout=10)


def test_default_always_exists_and_namespaces_are_created_listed_and_deleted(agent: InProcessAgent) -> None:
    assert [n["Name"] for n in agent.client.namespaces.get_namespaces()] == ["default"]
    assert agent.client.namespace.get_namespace("default")["Description"] == "Default shared namespace"
    created = agent.client.namespace.create_namespace({"Name": "shop-prod", "Description": "the shop",
                                                       "Meta": {"team": "a"}})
    assert created.status_code == 200 and created.content == b"" and int(created.headers["X-Nomad-Index"]) > 1
    got = agent.client.namespace.get_namespace("shop-prod")
    assert (got["Description"], got["Meta"], got["CreateIndex"]) == ("the shop", {"team": "a"}, got["ModifyIndex"])
    agent.client.namespace.update_namespace("shop-prod", {"Name": "shop-prod", "Description": "v2"})
    again = agent.client.namespace.get_namespace("shop-prod")
    assert (again["Description"], again["CreateIndex"]) == ("v2", got["CreateIndex"])
    assert again["ModifyIndex"] > got["ModifyIndex"]
    assert [n["Name"] for n in agent.client.namespaces.get_namespaces()] == ["default", "shop-prod"]
    assert [n["Name"] for n in agent.client.namespaces.get_namespaces(prefix="shop")] == ["shop-prod"]
    agent.client.namespace.delete_namespace("shop-prod")
    assert "shop-prod" not in agent.client.namespace
    # `default` can be described too (Nomad keeps it as a namespace like the others)
    agent.client.namespace.update_namespace("default", {"Name": "default", "Description": "ours"})
    assert agent.client.namespace.get_namespace("default")["Description"] == "ours"
    assert [n["Description"] for n in agent.client.namespaces.get_namespaces()] == ["ours"]


def test_namespace_refusals_use_nomads_texts(agent: InProcessAgent) -> None:
    r = requests.delete(f"{agent.addr}/v1/namespace/default", timeout=10)
    assert (r.status_code, _text(r)) == (500, "can not delete default namespace")
    r = requests.delete(f"{agent.addr}/v1/namespace/nope", timeout=10)
    assert (r.status_code, _text(r)) == (500, "namespace not found")
    r = requests.get(f"{agent.addr}/v1/namespace/", timeout=10)
    assert (r.status_code, _text(r)) == (400, "Missing Namespace Name")
    r = requests.get(f"{agent.addr}/v1/namespace/nope", timeout=10)
    assert (r.status_code, _text(r)) == (404, "Namespace not found")
    r = requests.post(f"{agent.addr}/v1/namespace/a", json={"Name": "b"}, timeout=10)
    assert (r.status_code, _text(r)) == (400, "Namespace name does not match request path")
    r = requests.post(f"{agent.addr}/v1/namespace", json={"Name": "bad name"}, timeout=10)
    assert r.status_code == 500
    assert _text(r) == ('Invalid namespace "bad name": 1 error occurred:\n\t* invalid name "bad name". '
                        "Must match regex ^[a-zA-Z0-9-]{1,128}$")
    r = requests.post(f"{agent.addr}/v1/namespace", json={"Name": "q", "Quota": "small"}, timeout=10)
    assert r.status_code == 400 and "not supported by the dev agent" in r.text
    assert [n["Name"] for n in agent.client.namespaces.get_namespaces()] == ["default"]


def test_a_job_in_a_missing_namespace_is_refused(agent: InProcessAgent) -> None:
    job = agent.client.jobs.parse(HCL % 'namespace = "shop-prod"')
    r = requests.post(f"{agent.addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert (r.status_code, _text(r)) == (500, 'job "web" is in nonexistent namespace "shop-prod"')
    # ?namespace= wins over the job's own, as Nomad's -namespace flag does
    r = requests.post(f"{agent.addr}/v1/jobs?namespace=other", json={"Job": agent.client.jobs.parse(HCL % "")},
                      timeout=10)
    assert (r.status_code, _text(r)) == (500, 'job "web" is in nonexistent namespace "other"')
    assert agent.client.jobs.get_jobs(namespace="*") == []


def test_jobs_are_isolated_per_namespace(agent: InProcessAgent) -> None:
    agent.client.namespace.create_namespace({"Name": "shop-prod"})
    shop = _in(agent, "shop-prod")
    shop.jobs.register_job({"Job": agent.client.jobs.parse(HCL % "")})  # python-nomad sends ?namespace=
    job = shop.job.get_job("web")
    assert job["Namespace"] == "shop-prod"
    wait_until(lambda: [a for a in shop.job.get_allocations("web") if a["ClientStatus"] == "running"], 10)
    # invisible from the default namespace: reads 404, lists empty
    with pytest.raises(nx.URLNotFoundNomadException):
        agent.client.job.get_job("web")
    assert agent.client.jobs.get_jobs() == []
    assert agent.client.allocations.get_allocations() == []
    assert agent.client.evaluations.get_evaluations() == []
    assert agent.client.job.get_allocations("web") == []
    # listed in its namespace and under `*`, with its namespace
    assert [(j["ID"], j["Namespace"]) for j in shop.jobs.get_jobs()] == [("web", "shop-prod")]
    assert [j["Namespace"] for j in agent.client.jobs.get_jobs(namespace="*")] == ["shop-prod"]
    assert {a["Namespace"] for a in shop.allocations.get_allocations()} == {"shop-prod"}
    evals = requests.get(f"{agent.addr}/v1/evaluations?namespace=shop-prod", timeout=10).json()  # no ns in python-nomad
    assert evals and {e["Namespace"] for e in evals} == {"shop-prod"}
    # plan, revert and the job's source are looked up in the request's namespace too
    plan = requests.post(f"{agent.addr}/v1/job/web/plan?namespace=default",
                         json={"Job": agent.client.jobs.parse(HCL % ""), "Diff": True}, timeout=10).json()
    assert plan["Diff"]["Type"] == "Added" and plan["JobModifyIndex"] == 0
    r = requests.post(f"{agent.addr}/v1/job/web/revert", json={"JobID": "web", "JobVersion": 0}, timeout=10)
    assert (r.status_code, _text(r)) == (500, 'job "web" not found')
    assert requests.get(f"{agent.addr}/v1/job/web/versions", timeout=10).status_code == 404
    assert requests.get(f"{agent.addr}/v1/job/web/versions?namespace=shop-prod", timeout=10).status_code == 200
    # a namespace with a live job cannot be deleted
    r = requests.delete(f"{agent.addr}/v1/namespace/shop-prod", timeout=10)
    assert r.status_code == 500
    assert 'namespace "shop-prod" has non-terminal jobs in regions: [global]' in r.text
    with pytest.raises(nx.URLNotFoundNomadException):
        agent.client.job.deregister_job("web")  # not found in default
    shop.job.deregister_job("web", purge=True)
    wait_until(lambda: not [a for a in shop.allocations.get_allocations() if a["ClientStatus"] == "running"], 15)
    wait_until(lambda: requests.delete(f"{agent.addr}/v1/namespace/shop-prod", timeout=10).status_code == 200, 15)
    assert "shop-prod" not in agent.client.namespace


def test_the_same_job_id_lives_in_each_namespace_apart(agent: InProcessAgent) -> None:
    """Nomad keys jobs by (namespace, ID): `web` in `default` and `web` in `shop-prod` are two jobs,
    each with its own versions, source, allocations, evaluations and deployments."""
    agent.client.namespace.create_namespace({"Name": "shop-prod"})
    shop, default = _in(agent, "shop-prod"), agent.client
    for ns, args in (("shop-prod", '["300"]'), ("default", '["301"]')):
        hcl = (HCL % "").replace('["300"]', args)
        r = requests.post(f"{agent.addr}/v1/jobs?namespace={ns}", timeout=10,
                          json={"Job": agent.client.jobs.parse(hcl), "Submission": {"Source": hcl, "Format": "hcl2"}})
        assert r.status_code == 200, r.text
    for c in (shop, default):
        wait_until(lambda c=c: [a for a in c.job.get_allocations("web") if a["ClientStatus"] == "running"], 15)
    args = {ns: c.job.get_job("web")["TaskGroups"][0]["Tasks"][0]["Config"]["args"]
            for ns, c in (("shop-prod", shop), ("default", default))}
    assert args == {"shop-prod": ["300"], "default": ["301"]}
    assert [(j["Namespace"], j["ID"]) for j in default.jobs.get_jobs(namespace="*")] == [
        ("default", "web"), ("shop-prod", "web")]
    for ns, c in (("shop-prod", shop), ("default", default)):
        assert {a["Namespace"] for a in c.job.get_allocations("web")} == {ns}
        assert {e["Namespace"] for e in c.job.get_evaluations("web")} == {ns}
        assert {d["Namespace"] for d in c.job.get_deployments("web")} <= {ns}
        sub = requests.get(f"{agent.addr}/v1/job/web/submission?version=0&namespace={ns}", timeout=10).json()
        assert (sub["Namespace"], sub["Source"].count(args[ns][0])) == (ns, 1)
    # a second version of one leaves the other at version 0
    shop.job.register_job("web", {"Job": {**agent.client.jobs.parse(HCL % ""), "Meta": {"v": "2"}}})
    assert (shop.job.get_job("web")["Version"], default.job.get_job("web")["Version"]) == (1, 0)
    assert len(shop.job.get_versions("web")["Versions"]) == 2 and len(default.job.get_versions("web")["Versions"]) == 1
    r = requests.post(f"{agent.addr}/v1/job/web/stable?namespace=shop-prod", timeout=10,
                      json={"JobID": "web", "JobVersion": 1, "Stable": True})
    assert r.status_code == 200 and shop.job.get_job("web")["Stable"] and not default.job.get_job("web")["Stable"]
    r = requests.post(f"{agent.addr}/v1/job/web/evaluate?namespace=shop-prod", json={"JobID": "web"}, timeout=10)
    assert requests.get(f"{agent.addr}/v1/evaluation/{r.json()['EvalID']}", timeout=10).json()["Namespace"] == \
        "shop-prod"
    # purging one leaves the other running
    default.job.deregister_job("web", purge=True)
    with pytest.raises(nx.URLNotFoundNomadException):
        default.job.get_job("web")
    wait_until(lambda: not [a for a in default.allocations.get_allocations() if a["ClientStatus"] == "running"], 15)
    assert shop.job.get_job("web")["Status"] == "running"
    assert [a["ClientStatus"] for a in shop.job.get_allocations("web") if a["DesiredStatus"] == "run"] == ["running"]

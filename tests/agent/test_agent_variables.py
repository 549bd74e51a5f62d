"""Nomad Variables on the real agent over HTTP, with python-nomad where it covers the call: set, read,
list by prefix and namespace, check-and-set (409 with the variable found), delete, Nomad's path
rules and refusals, and persistence across a restart."""
from __future__ import annotations

import time

import nomad
import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent, RunningAgent
from support.waiting import wait_until


def _text(r: requests.Response) -> str:
    return r.text.rstrip("\n")  # the agent ends its plain-text errors with a newline


def test_set_read_list_update_and_delete(agent: InProcessAgent) -> None:
    c = agent.client
    written = c.variable.create_variable("nomad/jobs/web", {"Items": {"user": "app", "pass": "s3cret"}})
    assert written["Path"] == "nomad/jobs/web" and written["Namespace"] == "default"
    assert written["Items"] == {"user": "app", "pass": "s3cret"}
    assert written["CreateIndex"] == written["ModifyIndex"] > 0 and written["CreateTime"] > 0
    got = c.variable.get_variable("nomad/jobs/web")
    assert got == written
    c.variable.create_variable("other/thing", {"Items": {"a": "1"}})
    listed = c.variables.get_variables(prefix="nomad/")
    assert [v["Path"] for v in listed] == ["nomad/jobs/web"] and "Items" not in listed[0]
    assert [v["Path"] for v in c.variables.get_variables()] == ["nomad/jobs/web", "other/thing"]

    same = c.variable.create_variable("nomad/jobs/web", {"Items": {"user": "app", "pass": "s3cret"}})
    assert same["ModifyIndex"] == written["ModifyIndex"]  # unchanged Items write nothing
    changed = c.variable.create_variable("nomad/jobs/web", {"Items": {"user": "app2"}})
    assert changed["ModifyIndex"] > written["ModifyIndex"] and changed["CreateIndex"] == written["CreateIndex"]
    assert c.variable.get_variable("nomad/jobs/web")["Items"] == {"user": "app2"}  # Items replaced, not merged

    r = c.variable.delete_variable("nomad/jobs/web")
    assert r.status_code == 204 and int(r.headers["X-Nomad-Index"]) > changed["ModifyIndex"]
    with pytest.raises(nx.URLNotFoundNomadException):
        c.variable.get_variable("nomad/jobs/web")
    r = requests.get(f"{agent.addr}/v1/var/nomad/jobs/web", timeout=10)
    assert (r.status_code, _text(r)) == (404, "variable not found")
    assert requests.delete(f"{agent.addr}/v1/var/never/was", timeout=10).status_code == 204


def test_check_and_set_conflicts_answer_the_variable_found(agent: InProcessAgent) -> None:
    put = lambda cas, items: requests.put(f"{agent.addr}/v1/var/app/db?cas={cas}",  # noqa: E731
                                          json={"Items": items}, timeout=10)
    r = put(5, {"k": "v"})  # expected one that is not there: a zero variable
    assert r.status_code == 409 and r.json()["Path"] == "app/db" and r.json()["ModifyIndex"] == 0
    first = put(0, {"k": "v"})  # 0: only if it does not exist
    assert first.status_code == 200
    index = first.json()["ModifyIndex"]
    again = put(0, {"k": "other"})
    assert again.status_code == 409
    assert again.json()["Items"] == {"k": "v"} and again.json()["ModifyIndex"] == index
    assert int(again.headers["X-Nomad-Index"]) == index
    stale = put(index - 1, {"k": "other"})
    assert stale.status_code == 409 and stale.json()["ModifyIndex"] == index
    ok = put(index, {"k": "new"})
    assert ok.status_code == 200 and ok.json()["Items"] == {"k": "new"}
    new_index = ok.json()["ModifyIndex"]

    with pytest.raises(nx.VariableConflict):
        agent.client.variable.delete_variable("app/db", cas=index)  # stale: refused, nothing deleted
    assert agent.client.variable.get_variable("app/db")["Items"] == {"k": "new"}
    assert agent.client.variable.delete_variable("app/db", cas=new_index).status_code == 204
    r = requests.put(f"{agent.addr}/v1/var/app/db?cas=x", json={"Items": {"k": "v"}}, timeout=10)
    assert r.status_code == 400 and "can not parse cas" in r.text


@pytest.mark.parametrize(("path", "message"), [
    ("a b", 'invalid path "a b"'),
    ("a.b", 'invalid path "a.b"'),
    ("x" * 129, f'invalid path "{"x" * 129}"'),
    ("nomad", '"nomad" is a reserved top-level directory path'),
    ("nomad/other", 'only paths at "nomad/jobs" or "nomad/job-templates" and below are valid paths'),
    ("nomad/job-templates", '"nomad/job-templates" is a reserved directory path'),
    ("nomad/job-templates/a/b", '"nomad/job-templates" is a reserved directory path'),
])
def test_nomads_path_rules(agent: InProcessAgent, path: str, message: str) -> None:
    r = requests.put(f"{agent.addr}/v1/var/{path}", json={"Items": {"k": "v"}}, timeout=10)
    assert r.status_code == 400 and _text(r).startswith("RPC Error:: 400," + message), r.text
    assert agent.client.variables.get_variables() == []


@pytest.mark.parametrize("path", ["nomad/jobs", "nomad/jobs/web/db", "nomad/sentinel/x", "nomad/job-templates/t",
                                  "a-b_c~d/e"])
def test_paths_nomad_allows(agent: InProcessAgent, path: str) -> None:
    assert agent.client.variable.create_variable(path, {"Items": {"k": "v"}})["Path"] == path


def test_refusals(agent: InProcessAgent) -> None:
    url = f"{agent.addr}/v1/var/app/x"
    r = requests.put(url, json={"Items": {}}, timeout=10)
    assert (r.status_code, _text(r)) == (400, "variable missing required Items object")
    r = requests.put(url, json={"Items": {"big": "x" * 65536}}, timeout=10)
    assert (r.status_code, _text(r)) == (400, "RPC Error:: 400,variables are limited to 64KiB in total size")
    r = requests.put(f"{url}?namespace=*", json={"Items": {"k": "v"}}, timeout=10)
    assert (r.status_code, _text(r)) == (400, 'RPC Error:: 400,can not target wildcard ("*")namespace')
    r = requests.put(f"{agent.addr}/v1/var/", json={"Items": {"k": "v"}}, timeout=10)
    assert (r.status_code, _text(r)) == (400, "missing variable path")
    r = requests.put(f"{url}?lock-acquire&cas=1", json={}, timeout=10)
    assert (r.status_code, _text(r)) == (400, "CAS can't be used with lock operations")
    r = requests.put(f"{url}?lock-acquire&lock-release", json={}, timeout=10)
    assert (r.status_code, _text(r)) == (400, "multiple lock operations")
    assert agent.client.variables.get_variables(namespace="*") == []


def test_variables_are_per_namespace(agent: InProcessAgent) -> None:
    agent.client.variable.create_variable("app/db", {"Items": {"who": "default"}})
    agent.client.variable.create_variable("app/db", {"Items": {"who": "prod"}}, namespace="prod")
    assert agent.client.variable.get_variable("app/db")["Items"] == {"who": "default"}
    assert agent.client.variable.get_variable("app/db", namespace="prod")["Items"] == {"who": "prod"}
    assert [v["Namespace"] for v in agent.client.variables.get_variables(namespace="prod")] == ["prod"]
    assert sorted(v["Namespace"] for v in agent.client.variables.get_variables(namespace="*")) == ["default", "prod"]
    # a namespace that holds variables cannot be deleted
    agent.client.namespace.create_namespace({"Name": "keep"})
    agent.client.variable.create_variable("x", {"Items": {"k": "v"}}, namespace="keep")
    r = requests.delete(f"{agent.addr}/v1/namespace/keep", timeout=10)
    assert r.status_code == 500 and 'namespace "keep" has variables associated with it in regions: [global]' in r.text


def test_variables_survive_a_restart(running_agent: RunningAgent) -> None:
    c = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    written = c.variable.create_variable("nomad/jobs/keep", {"Items": {"token": "t0ken"}})
    running_agent.restart(kill=True)
    c = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    assert c.variable.get_variable("nomad/jobs/keep") == written


def test_locks_acquire_renew_release(agent: InProcessAgent) -> None:
    url = f"{agent.addr}/v1/var/app/leader"
    got = requests.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "30s"}}, timeout=10)
    assert got.status_code == 200, got.text
    lock = got.json()["Lock"]
    assert lock["TTL"] == "30s" and lock["LockDelay"] == "15s" and lock["ID"]
    assert "Items" not in got.json()  # a variable made only to hold the lock
    assert agent.client.variable.get_variable("app/leader")["Lock"]["ID"] == lock["ID"]

    other = requests.put(f"{url}?lock-acquire", json={}, timeout=10)  # somebody else: held
    assert other.status_code == 409 and other.json()["Path"] == "app/leader" and "Lock" not in other.json()
    r = requests.put(url, json={"Items": {"k": "v"}}, timeout=10)  # not the holder: conflict
    assert r.status_code == 409
    assert requests.delete(url, timeout=10).status_code == 409
    mine = requests.put(url, json={"Items": {"k": "v"}, "Lock": {"ID": lock["ID"]}}, timeout=10)
    assert mine.status_code == 200 and mine.json()["Items"] == {"k": "v"} and mine.json()["Lock"]["ID"] == lock["ID"]

    index = agent.client.variable.get_variable("app/leader")["ModifyIndex"]
    renewed = requests.put(f"{url}?lock-renew", json={"Lock": {"ID": lock["ID"]}}, timeout=10)
    assert renewed.status_code == 200 and renewed.json()["Lock"]["ID"] == lock["ID"]
    assert renewed.json()["ModifyIndex"] == index  # a renew writes nothing
    r = requests.put(f"{url}?lock-renew", json={"Lock": {"ID": "not-mine"}}, timeout=10)
    assert (r.status_code, _text(r)) == (409, "attempting to modify locked variable")
    r = requests.put(f"{url}?lock-release", json={"Lock": {"ID": "not-mine"}}, timeout=10)
    assert r.status_code == 409 and r.json()["Lock"] == {"ID": "", "TTL": "", "LockDelay": ""}

    released = requests.put(f"{url}?lock-release", json={"Lock": {"ID": lock["ID"]}}, timeout=10)
    assert released.status_code == 200 and "Lock" not in released.json()
    assert "Lock" not in agent.client.variable.get_variable("app/leader")
    r = requests.put(f"{url}?lock-release", json={"Lock": {"ID": lock["ID"]}}, timeout=10)
    assert (r.status_code, _text(r)) == (409, "variable doesn't hold a lock")
    r = requests.put(f"{agent.addr}/v1/var/nope?lock-renew", json={"Lock": {"ID": "x"}}, timeout=10)
    assert (r.status_code, _text(r)) == (404, "variable doesn't exist")
    assert requests.put(f"{url}?lock-acquire", json={}, timeout=10).status_code == 200  # free again
    r = requests.put(f"{agent.addr}/v1/var/app/other?lock-acquire", json={"Lock": {"TTL": "1s"}}, timeout=10)
    assert r.status_code == 400 and "TTL must be between 10 seconds and 24 hours" in r.text


def test_a_lock_not_renewed_lapses_and_its_delay_holds_others_off(agent: InProcessAgent) -> None:
    url = f"{agent.addr}/v1/var/app/lapse"
    got = requests.put(f"{url}?lock-acquire", json={"Lock": {"TTL": "10s", "LockDelay": "3s"}}, timeout=10)
    assert got.status_code == 200, got.text
    index = got.json()["ModifyIndex"]
    # a blocking read wakes when the lock lapses (Nomad's TTL timer writes the variable)
    r = requests.get(f"{url}?index={index}&wait=30s", timeout=40)
    assert r.status_code == 200 and "Lock" not in r.json() and r.json()["ModifyIndex"] > index
    lapsed_at = time.monotonic()
    refused = requests.put(f"{url}?lock-acquire", json={}, timeout=10)
    assert refused.status_code == 409 or time.monotonic() - lapsed_at >= 3  # within the lock delay: refused
    wait_until(lambda: requests.put(f"{url}?lock-acquire", json={}, timeout=10).status_code == 200, 10)

"""Releases and rollback against a real agent process over HTTP: deploy → edit → deploy → history →
rollback --yes puts the old job version back running (its submitted source is the old file) and
restores the intention changed in between; bad input is refused with nothing applied; two
writers never take the same release number."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.releases import Release, ReleaseStore
from nomadmesh.deploy.target import target_from_env
from support.agents import RunningAgent
from support.waiting import wait_until

# A task that says which definition it runs, then stays up: its log tells the running version apart.
SAY = "import os, sys, time; print('greeting=' + os.environ['GREETING'], flush=True); time.sleep(3600)"


def definition(name: str, greeting: str) -> dict[str, Any]:
    return {"service": {"name": name, "port": 8080},
            "nomad": {"driver": "raw_exec", "command": "python3", "args": ["-c", SAY],
                      "env": {"GREETING": greeting}, "update": {"min_healthy_time": "1s"}}}


def project(root: Path, name: str, greeting: str) -> Path:
    """A project folder named `name` (nomadmesh.json names it too) with one service `name`."""
    (root / "services" / name).mkdir(parents=True, exist_ok=True)
    (root / "nomadmesh.json").write_text(json.dumps({"name": f"{name}-project"}))
    (root / "services" / name / "service.json").write_text(json.dumps(definition(name, greeting)))
    return root / "services"


def run(agent: RunningAgent, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr],
                              catch_exceptions=False)


def rendered(services: Path, name: str, out: Path) -> str:
    r = CliRunner().invoke(cli, ["render", "--services", str(services), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return (out / f"{name}.nomad.hcl").read_text()


def job(agent: RunningAgent, name: str) -> dict[str, Any]:
    r = requests.get(f"{agent.nomad_addr}/v1/job/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def sources(agent: RunningAgent, destination: str) -> dict[str, str]:
    r = requests.get(f"{agent.consul_addr}/v1/config/service-intentions/{destination}", timeout=10)
    return {s["Name"]: s["Action"] for s in r.json()["Sources"]} if r.status_code == 200 else {}


def running_greeting(agent: RunningAgent, name: str, version: int) -> str | None:
    """What the running allocation of `version` printed, once it has."""
    allocs = requests.get(f"{agent.nomad_addr}/v1/job/{name}/allocations", timeout=10).json()
    live = [a for a in allocs if a["JobVersion"] == version and a["ClientStatus"] == "running"]
    if not live:
        return None
    r = requests.get(f"{agent.nomad_addr}/v1/client/fs/logs/{live[0]['ID']}",
                     params={"task": name, "type": "stdout", "plain": "true"}, timeout=10)
    line = next((ln for ln in r.text.splitlines() if ln.startswith("greeting=")), None)
    return line.removeprefix("greeting=") if line else None


def test_deploy_edit_deploy_history_rollback(module_agent: RunningAgent, tmp_path: Path) -> None:
    a = module_agent
    services = project(tmp_path, "relweb", "one")
    first_file = rendered(services, "relweb", tmp_path / "jobs1")
    assert run(a, "intent", "allow", "relcaller", "relweb").exit_code == 0
    r = run(a, "deploy", "--services", str(services))
    assert r.exit_code == 0, r.output
    assert "Recorded release 1." in r.output

    project(tmp_path, "relweb", "two")
    assert rendered(services, "relweb", tmp_path / "jobs2") != first_file
    assert run(a, "intent", "deny", "relcaller", "relweb").exit_code == 0
    r = run(a, "deploy", "--services", str(services), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["release"] == 2
    assert job(a, "relweb")["Version"] == 1
    r = run(a, "deploy", "--services", str(services))  # nothing changed: no new release
    assert r.exit_code == 0 and "No new release: unchanged since release 2." in r.output, r.output

    r = run(a, "history", "--services", str(services), "--json")
    assert r.exit_code == 0, r.output
    history = json.loads(r.output)
    assert history["project"] == "relweb-project"
    assert [(h["number"], h["kind"], h["jobs"]) for h in history["releases"]] == [
        (1, "deploy", {"relweb": 0}), (2, "deploy", {"relweb": 1})]
    assert [s["Action"] for s in history["releases"][0]["entries"]["service-intentions/relweb"]["Sources"]] == [
        "allow"]
    assert history["releases"][0]["entries"]["service-defaults/relweb"] is None
    text = run(a, "history", "--services", str(services)).output
    assert "relweb@0" in text and "relweb@1" in text and "service-intentions/relweb" in text

    r = run(a, "rollback", "--services", str(services))  # no terminal to confirm on: refused
    assert r.exit_code == 2 and "pass --yes" in r.output, r.output
    assert job(a, "relweb")["Version"] == 1 and sources(a, "relweb") == {"relcaller": "deny"}

    r = run(a, "rollback", "--services", str(services), "--yes")
    assert r.exit_code == 0, r.output
    assert "job relweb: version 1 → revert to version 0" in r.output
    assert "restore service-intentions/relweb (relcaller: deny → allow)" in r.output
    assert "Recorded release 3 (rollback to 1)." in r.output
    live = job(a, "relweb")
    assert live["Version"] == 2 and live["TaskGroups"][0]["Tasks"][0]["Env"]["GREETING"] == "one"
    sub = requests.get(f"{a.nomad_addr}/v1/job/relweb/submission", params={"version": 2}, timeout=10).json()
    assert sub["Source"] == first_file  # the old file is what runs again
    assert wait_until(lambda: running_greeting(a, "relweb", 2), 30) == "one"
    assert sources(a, "relweb") == {"relcaller": "allow"}
    releases = json.loads(run(a, "history", "--services", str(services), "--json").output)["releases"]
    assert (releases[-1]["kind"], releases[-1]["rolled_back_to"], releases[-1]["jobs"]) == (
        "rollback", 1, {"relweb": 2})

    r = run(a, "rollback", "--services", str(services), "--to", "3", "--yes")
    assert r.exit_code == 0 and "Nothing to roll back" in r.output, r.output
    r = run(a, "rollback", "--services", str(services), "--to", "9", "--yes")
    assert r.exit_code == 2 and "has no release 9 (releases: 1, 2, 3)" in r.output, r.output
    requests.delete(f"{a.nomad_addr}/v1/job/relweb", params={"purge": "true"}, timeout=10)
    r = run(a, "rollback", "--services", str(services), "--to", "2", "--yes")
    assert r.exit_code == 1 and "'relweb' is gone from Nomad" in r.output, r.output
    assert sources(a, "relweb") == {"relcaller": "allow"}  # nothing half-applied: the entry was not touched


def test_no_releases_and_only_one_release_are_clear_errors(module_agent: RunningAgent, tmp_path: Path) -> None:
    services = project(tmp_path, "relone", "one")
    r = run(module_agent, "rollback", "--services", str(services), "--yes")
    assert r.exit_code == 2 and "no releases recorded for project 'relone-project'" in r.output, r.output
    r = run(module_agent, "history", "--services", str(services))
    assert r.exit_code == 0 and "No releases recorded" in r.output
    assert run(module_agent, "deploy", "--services", str(services), "--detach").exit_code == 0
    r = run(module_agent, "rollback", "--services", str(services), "--yes")
    assert r.exit_code == 2 and "release 1 is the only release" in r.output, r.output
    requests.delete(f"{module_agent.nomad_addr}/v1/job/relone", params={"purge": "true"}, timeout=10)


def test_concurrent_writers_never_share_a_number(module_agent: RunningAgent) -> None:
    target = target_from_env({}, nomad_addr=module_agent.nomad_addr, consul_addr=module_agent.consul_addr)
    store = ReleaseStore(ConsulAPI(target), "relrace")
    taken: list[int] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        release = store.add(lambda n, _latest: Release(n, "t", f"w{i}", "deploy", {"j": i}))
        assert release is not None
        with lock:
            taken.append(release.number)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 9))
    assert sorted(r.who for r in store.all()) == sorted(f"w{i}" for i in range(8))


def test_the_library_records_a_release_when_given_the_project(module_agent: RunningAgent, tmp_path: Path) -> None:
    import nomadmesh

    target = target_from_env({}, nomad_addr=module_agent.nomad_addr, consul_addr=module_agent.consul_addr)
    spec = nomadmesh.load(project(tmp_path, "rellib", "one"))
    assert nomadmesh.apply(nomadmesh.plan(spec, target=target), target=target, detach=True, project="rellib-py").ok
    (recorded,) = ReleaseStore(ConsulAPI(target), "rellib-py").all()
    assert recorded.jobs == {"rellib": 0} and recorded.kind == "deploy"
    requests.delete(f"{module_agent.nomad_addr}/v1/job/rellib", params={"purge": "true"}, timeout=10)


def test_an_entry_changed_after_the_plan_is_not_overwritten(module_agent: RunningAgent, tmp_path: Path) -> None:
    from nomadmesh.deploy.nomad_api import NomadAPI
    from nomadmesh.deploy.rollback import apply_rollback, read_rollback
    from nomadmesh.progress import SilentProgress

    a = module_agent
    services = project(tmp_path, "relcas", "one")
    assert run(a, "intent", "allow", "relcaller", "relcas").exit_code == 0
    assert run(a, "deploy", "--services", str(services), "--detach").exit_code == 0
    project(tmp_path, "relcas", "two")
    assert run(a, "intent", "deny", "relcaller", "relcas").exit_code == 0
    assert run(a, "deploy", "--services", str(services), "--detach").exit_code == 0

    target = target_from_env({}, nomad_addr=a.nomad_addr, consul_addr=a.consul_addr)
    nomad, consul = NomadAPI(target), ConsulAPI(target)
    first, latest = ReleaseStore(consul, "relcas-project").all()
    plan = read_rollback(nomad, consul, first, latest)
    assert [s.key for s in plan.entries] == ["service-intentions/relcas"] and len(plan.jobs) == 1
    assert run(a, "intent", "allow", "someone", "relcas").exit_code == 0  # a writer between plan and apply

    outcome = apply_rollback(nomad, consul, plan, SilentProgress(), detach=True)
    assert not outcome.ok and outcome.applied == []
    assert outcome.error == "service-intentions/relcas changed since the rollback was planned; not overwritten"
    assert outcome.not_applied == ["restore service-intentions/relcas (relcaller: deny → allow)",
                                   "job relcas: revert to version 0"]
    assert job(a, "relcas")["Version"] == 1  # the job was not touched either
    assert sources(a, "relcas") == {"relcaller": "deny", "someone": "allow"}
    requests.delete(f"{a.nomad_addr}/v1/job/relcas", params={"purge": "true"}, timeout=10)


def put_entry(agent: RunningAgent, entry: dict[str, Any]) -> None:
    r = requests.put(f"{agent.consul_addr}/v1/config", json=entry, timeout=10)
    assert r.status_code == 200 and r.json() is True, r.text


def test_rollback_drops_l7_rules_before_the_protocol_they_need(module_agent: RunningAgent, tmp_path: Path) -> None:
    a = module_agent
    plain = {"Kind": "service-intentions", "Name": "relproto", "Sources": [{"Name": "web", "Action": "allow"}]}
    l7 = {"Kind": "service-intentions", "Name": "relproto", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/public"}}]}]}
    services = project(tmp_path, "relproto", "one")
    put_entry(a, {"Kind": "service-defaults", "Name": "relproto", "Protocol": "tcp"})
    put_entry(a, plain)
    assert run(a, "deploy", "--services", str(services), "--detach").exit_code == 0
    put_entry(a, {"Kind": "service-defaults", "Name": "relproto", "Protocol": "http"})
    put_entry(a, l7)  # Consul takes L7 rules only once the protocol is http
    project(tmp_path, "relproto", "two")
    assert run(a, "deploy", "--services", str(services), "--detach").exit_code == 0

    r = run(a, "rollback", "--services", str(services), "--yes", "--detach")
    assert r.exit_code == 0, r.output  # the tcp protocol could only come back after the L7 rule went
    defaults = requests.get(f"{a.consul_addr}/v1/config/service-defaults/relproto", timeout=10).json()
    assert defaults["Protocol"] == "tcp" and sources(a, "relproto") == {"web": "allow"}
    requests.delete(f"{a.nomad_addr}/v1/job/relproto", params={"purge": "true"}, timeout=10)

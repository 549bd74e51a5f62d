"""Zero trust with real Envoy: on an agent started with `--default-policy deny`, the sample chain
(ingress → order → invoice → tax) works only because `deploy` writes an allow per declared upstream;
an operator's `intent deny` is an override that a later `deploy` keeps (unless --reset-overrides);
`intent delete` gives the derived allow back. Two deploys of one project at once: one wins, the
other fails before writing anything."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import consul_client, target_from_env
from support.agents import RunningAgent, started_agents
from support.paths import SERVICES
from support.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.envoy]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    env = {"NOMADMESH_CNI_BRIDGE": f"nmp{tag}",
           "NOMADMESH_CNI_SUBNET": f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24",
           "NOMADMESH_NETNS_PREFIX": f"nmp{tag}-",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    factory = started_agents(tmp_path_factory)
    try:
        yield next(factory)("--default-policy", "deny")
    finally:
        factory.close()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        subprocess.run(["ip", "link", "delete", f"nmp{tag}"], capture_output=True)


@pytest.fixture(autouse=True)
def no_entries_left(agent: RunningAgent) -> Iterator[None]:
    """Each test starts without config entries: one project's entries are another's overrides."""
    yield
    consul = consul_client(target_from_env({}, consul_addr=agent.consul_addr))
    for kind in ("service-intentions", "service-defaults"):
        for entry in consul.config.list(kind) or []:
            consul.config.delete(kind, entry["Name"])


def run(agent: RunningAgent, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr],
                              catch_exceptions=False)


def intent(agent: RunningAgent, *args: str) -> Result:
    return CliRunner().invoke(cli, ["intent", *args], env={"CONSUL_HTTP_ADDR": agent.consul_addr})


def project(tmp_path: Path, name: str) -> Path:
    """A copy of the sample services in a project folder whose nomadmesh.json names it `name`."""
    shutil.copytree(SERVICES, tmp_path / name / "services")
    (tmp_path / name / "nomadmesh.json").write_text(json.dumps({"name": name}))
    return tmp_path / name / "services"


def chain_works(gateway: str) -> bool:
    try:
        r = requests.get(f"http://{gateway}/", timeout=5)
    except requests.RequestException:
        return False
    return r.status_code == 200 and len([ln for ln in r.text.splitlines() if ln.strip()]) == 3


def source(agent: RunningAgent, destination: str, name: str) -> tuple[dict, str]:
    entry = consul_client(target_from_env({}, consul_addr=agent.consul_addr)).config.get(
        "service-intentions", destination) or {}
    src = next(s for s in entry.get("Sources") or [] if s["Name"] == name)
    return src, (entry.get("Meta") or {}).get(f"nomadmesh-source-{name}", "")


def test_default_deny_chain_works_by_derived_allows_and_overrides_survive_deploy(
        agent: RunningAgent, tmp_path: Path) -> None:
    services = project(tmp_path, "shop")
    r = run(agent, "plan", "--services", str(services))
    assert r.exit_code == 1, r.output
    assert "+ intention invoice => tax: add allow (upstream of invoice)" in r.output
    assert "+ intention ingress => order: add allow (upstream of ingress)" in r.output

    r = run(agent, "deploy", "--services", str(services), "--timeout", "90")
    assert r.exit_code == 0, r.output
    # The allows are written before the first job is registered.
    lines = r.output.splitlines()
    assert lines.index("intention invoice => tax: wrote") < next(
        i for i, ln in enumerate(lines) if ln.startswith("Registering tax"))
    assert source(agent, "tax", "invoice") == (
        {"Name": "invoice", "Type": "consul", "Action": "allow", "Precedence": 9,
         "Description": "nomadmesh: invoice declares tax as an upstream"}, "deploy:shop")
    status = {j["job"]: j for j in json.loads(run(agent, "status", "--json").output)}
    (gateway,) = status["ingress"]["addresses"]
    wait_until(lambda: chain_works(gateway), 20, "the chain answers under default deny")
    assert run(agent, "plan", "--services", str(services)).exit_code == 0  # converged: nothing to do

    # The operator closes invoice => tax: an override, which deploy keeps.
    assert intent(agent, "deny", "invoice", "tax").exit_code == 0
    wait_until(lambda: not chain_works(gateway), 10, "the deny breaks the chain")
    assert source(agent, "tax", "invoice")[1].startswith("intent:")
    r = run(agent, "plan", "--services", str(services), "--json")
    assert r.exit_code == 0, r.output  # an override is not a change deploy makes
    (override,) = [e for e in json.loads(r.output)["entries"] if e["action"] == "override"]
    assert (override["source"], override["name"], override["before"]["Action"]) == ("invoice", "tax", "deny")
    assert override["written_by"].startswith("intent:")
    r = run(agent, "plan", "--services", str(services))
    assert "! intention invoice => tax: override deny, written by intent:" in r.output
    r = run(agent, "deploy", "--services", str(services), "--timeout", "90")
    # Kept, and deploy's edge check says the declared upstream it closes does not work.
    assert r.exit_code == 1, r.output
    assert "  FAIL invoice -> tax: denied by invoice => tax (deny)" in r.output
    assert source(agent, "tax", "invoice")[0]["Action"] == "deny"
    assert not chain_works(gateway)

    # --reset-overrides puts the declared allow back and takes the source over again.
    r = run(agent, "deploy", "--services", str(services), "--reset-overrides", "--timeout", "90")
    assert r.exit_code == 0, r.output
    assert "intention invoice => tax: updated" in r.output
    assert source(agent, "tax", "invoice")[0]["Action"] == "allow"
    assert source(agent, "tax", "invoice")[1] == "deploy:shop"
    wait_until(lambda: chain_works(gateway), 10, "the chain answers again")

    # `intent delete` of the operator's deny restores the derived allow (not the default deny).
    assert intent(agent, "deny", "invoice", "tax").exit_code == 0
    wait_until(lambda: not chain_works(gateway), 10, "the deny breaks the chain")
    r = intent(agent, "delete", "invoice", "tax")
    assert r.exit_code == 0 and r.output == ("Deleted: invoice => tax; the rule a deploy wrote is back: allow "
                                             "(nomadmesh: invoice declares tax as an upstream)\n"), r.output
    assert source(agent, "tax", "invoice")[0]["Action"] == "allow"
    assert source(agent, "tax", "invoice")[1] == "deploy:shop"
    wait_until(lambda: chain_works(gateway), 10, "the chain answers after intent delete")

    # An upstream nobody declares any more loses its allow, after the job that used it is updated.
    order = services / "order" / "service.json"
    doc = json.loads(order.read_text())
    doc["service"]["connect"]["sidecar_service"] = {}
    order.write_text(json.dumps(doc))
    r = run(agent, "deploy", "--services", str(services), "--timeout", "90")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    removed = lines.index("intention order => invoice: removed")
    assert removed > next(i for i, ln in enumerate(lines) if ln.startswith("Waiting for order"))
    entry = consul_client(target_from_env({}, consul_addr=agent.consul_addr)).config.get(
        "service-intentions", "invoice")
    assert entry is None  # its only source gone: the entry goes
    api = NomadAPI(target_from_env({}, agent.nomad_addr, agent.consul_addr))
    for name in ("ingress", "order", "invoice", "tax"):
        api.deregister(name, purge=True)


PAIR = {
    "alpha": {"service": {"name": "alpha", "port": 8080, "connect": {"sidecar_service": {"proxy": {
        "upstreams": [{"destination_name": "beta", "local_bind_port": 9001}]}}}}},
    "beta": {"service": {"name": "beta", "port": 8080, "connect": {"sidecar_service": {}}}},
}


def test_two_deploys_at_once_one_wins_the_other_changes_nothing(agent: RunningAgent, tmp_path: Path) -> None:
    root = tmp_path / "pair" / "services"
    for name, doc in PAIR.items():
        doc = {**doc, "nomad": {"driver": "raw_exec", "command": sys.executable,
                                "args": ["-m", "http.server", "8080", "--bind", "127.0.0.1"],
                                "update": {"min_healthy_time": "1s", "healthy_deadline": "30s",
                                           "progress_deadline": "1m"}}}
        (root / name).mkdir(parents=True)
        (root / name / "service.json").write_text(json.dumps(doc))
    (root.parent / "nomadmesh.json").write_text(json.dumps({"name": "pair"}))
    argv = [sys.executable, "-m", "nomadmesh", "deploy", "--services", str(root), "--timeout", "60",
            "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    loser = outs[[p.returncode for p in procs].index(1)]
    assert "another deploy of project 'pair' is running" in loser[1], loser
    assert "Traceback" not in loser[1] and "Registering" not in loser[0] + loser[1]
    api = NomadAPI(target_from_env({}, agent.nomad_addr, agent.consul_addr))
    assert [api.job(n)["Version"] for n in ("alpha", "beta")] == [0, 0]  # registered once each
    assert source(agent, "beta", "alpha")[1] == "deploy:pair"
    consul = consul_client(target_from_env({}, consul_addr=agent.consul_addr))
    assert consul.kv.get("nomadmesh/deploy-lock/pair")[1] is None  # the winner released the lock
    for name in PAIR:
        api.deregister(name, purge=True)


def test_protocol_and_l7_rule_from_the_project_are_enforced_by_envoy(agent: RunningAgent, tmp_path: Path) -> None:
    """tax declares http (Consul's proxy config key): deploy writes its service-defaults, and the
    nomadmesh.json L7 rule for invoice => tax replaces the derived allow; Envoy enforces its path."""
    services = project(tmp_path, "l7shop")
    tax = services / "tax" / "service.json"
    doc = json.loads(tax.read_text())
    doc["service"]["connect"]["sidecar_service"] = {"proxy": {"config": {"protocol": "http"}}}
    tax.write_text(json.dumps(doc))

    def rule(path: str) -> None:
        (services.parent / "nomadmesh.json").write_text(json.dumps({"name": "l7shop", "intentions": [
            {"source": "invoice", "destination": "tax", "description": "reads only",
             "permissions": [{"action": "allow", "http": {"PathExact": path, "Methods": ["GET"]}}]}]}))

    rule("/")
    r = run(agent, "plan", "--services", str(services))
    assert r.exit_code == 1, r.output
    assert "+ service-defaults tax: add protocol http" in r.output
    assert "+ intention invoice => tax: add L7: allow GET / (nomadmesh.json intentions[0])" in r.output
    r = run(agent, "deploy", "--services", str(services), "--timeout", "90")
    assert r.exit_code == 0, r.output
    consul = consul_client(target_from_env({}, consul_addr=agent.consul_addr))
    defaults = consul.config.get("service-defaults", "tax")
    assert (defaults["Protocol"], defaults["Meta"]) == (
        "http", {"nomadmesh-managed": "true", "nomadmesh-project": "l7shop"})
    api = NomadAPI(target_from_env({}, agent.nomad_addr, agent.consul_addr))
    proxy = api.job("tax")["TaskGroups"][0]["Services"][0]["Connect"]["SidecarService"]["Proxy"]
    assert proxy["Config"] == {"protocol": "http"}
    src, owner = source(agent, "tax", "invoice")
    assert (src["Permissions"][0]["HTTP"], owner) == ({"PathExact": "/", "Methods": ["GET"]}, "deploy:l7shop")
    status = {j["job"]: j for j in json.loads(run(agent, "status", "--json").output)}
    (gateway,) = status["ingress"]["addresses"]
    wait_until(lambda: chain_works(gateway), 20, "GET / allowed by the L7 rule")

    rule("/rates")  # invoice's GET / is now outside the rule: default deny decides, per request
    r = run(agent, "plan", "--services", str(services))
    assert "~ intention invoice => tax: change L7: allow GET / -> L7: allow GET /rates" in r.output, r.output
    r = run(agent, "deploy", "--services", str(services), "--timeout", "90")
    assert r.exit_code == 0, r.output
    wait_until(lambda: not chain_works(gateway), 10, "GET / denied by tax's sidecar")
    body = requests.get(f"http://{gateway}/", timeout=5).text
    assert "upstream tax answered 403" in body, body
    for name in ("ingress", "order", "invoice", "tax"):
        api.deregister(name, purge=True)

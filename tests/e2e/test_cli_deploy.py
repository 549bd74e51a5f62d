"""plan / deploy / status / logs / destroy against a real agent (bridge networking, own bridge).

Services here have no `connect` block (they publish a port without sidecars), except the portless Connect worker."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from nomadmesh.cli.main import cli
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import target_from_env
from support.agents import RunningAgent, started_agents as _agent_factory
from support.paths import SERVICES
from support.waiting import wait_until

pytestmark = pytest.mark.root

WEB = {"service": {"name": "web", "port": 8080},
       "nomad": {"driver": "raw_exec", "command": "python3",
                 "args": ["-m", "http.server", "8080", "--bind", "0.0.0.0"], "publish": 0,
                 "checks": [{"type": "http", "path": "/", "interval": "1s", "timeout": "1s"}],
                 "update": {"min_healthy_time": "500ms", "healthy_deadline": "30s", "progress_deadline": "1m"}}}
CRASH = {"service": {"name": "crash", "port": 8080},
         "nomad": {"driver": "raw_exec", "command": "python3",
                   "args": ["-c", "import sys; sys.stderr.write('boom: database unreachable\\n'); sys.exit(3)"],
                   "restart": {"attempts": 0, "mode": "fail"},
                   "update": {"min_healthy_time": "500ms", "healthy_deadline": "20s", "progress_deadline": "30s",
                              "health_check": "task_states"}}}
REPO_SERVICES = SERVICES
DOCK = {"service": {"name": "dock", "port": 8080}, "nomad": {"driver": "docker", "image": "nginx"}}


def write_services(root: Path, *defs: dict[str, Any]) -> Path:
    for d in defs:
        folder = root / d["service"]["name"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "service.json").write_text(json.dumps(d))
    return root


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    env = {"NOMADMESH_CNI_BRIDGE": f"nmd{tag}",
           "NOMADMESH_CNI_SUBNET": f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24",
           "NOMADMESH_NETNS_PREFIX": f"nmd{tag}-",
           # The samples run `python3 ../app.py` and need flask + waitress: this venv's python3 first.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the agent subprocess inherits them
    factory = _agent_factory(tmp_path_factory)
    try:
        yield next(factory)()
    finally:
        factory.close()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        subprocess.run(["ip", "link", "delete", f"nmd{tag}"], capture_output=True)


def run(agent: RunningAgent, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr],
                              input=input, catch_exceptions=False)


def api(agent: RunningAgent) -> NomadAPI:
    return NomadAPI(target_from_env({}, agent.nomad_addr, agent.consul_addr))


def test_plan_deploy_noop_status_logs_destroy(agent: RunningAgent, tmp_path: Path) -> None:
    svc = write_services(tmp_path / "services", WEB)
    r = run(agent, "plan", "--services", str(svc))
    assert r.exit_code == 1, r.output
    assert "+ web: create (new job)" in r.output and '+ Task Group: "web" (1 create)' in r.output
    assert '+ Env[PORT]: "8080"' in r.output

    r = run(agent, "deploy", "--services", str(svc))
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "Registering web ... done (version 0)"
    assert lines[-2].startswith("Waiting for web ... healthy (1/1, ")
    assert lines[-1] == "Recorded release 1."  # in the target's Consul KV: `nomadmesh history`

    r = run(agent, "plan", "--services", str(svc), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["jobs"][0]["action"] == "noop"

    r = run(agent, "deploy", "--services", str(svc), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] and report["jobs"][0]["action"] == "noop" and report["jobs"][0]["version"] == 0
    assert api(agent).job("web")["Version"] == 0  # no new job version

    r = run(agent, "status", "--json")
    assert r.exit_code == 0, r.output
    (web,) = [j for j in json.loads(r.output) if j["job"] == "web"]
    assert web["deployment"] == "successful" and web["allocations"][0]["tasks"] == {"web": "running"}
    assert requests.get(f"http://{web['addresses'][0]}/", timeout=5).status_code == 200
    assert f"call: curl http://{web['addresses'][0]}/" in run(agent, "status").output

    r = run(agent, "logs", "web", "--stderr")
    assert r.exit_code == 0 and '"GET / HTTP/1.1" 200' in r.output

    r = run(agent, "destroy", "web", input="")  # no answer: refuse
    assert r.exit_code == 1 and "pass --yes" in r.output
    assert api(agent).job("web")["Stop"] is False
    r = run(agent, "destroy", "web", "--purge", "--yes")
    assert r.exit_code == 0 and "Purging web ... done" in r.output
    assert api(agent).job("web") is None


def test_deploy_json_report_and_update_creates_new_version(agent: RunningAgent, tmp_path: Path) -> None:
    d = json.loads(json.dumps(WEB))
    d["service"]["name"] = "web2"
    svc = write_services(tmp_path / "s", d)
    r = run(agent, "deploy", "--services", str(svc), "--json")
    assert r.exit_code == 0, r.output
    (j,) = json.loads(r.output)["jobs"]
    assert (j["job"], j["action"], j["version"], j["deployment_status"], j["healthy"], j["desired"]) == \
        ("web2", "create", 0, "successful", 1, 1)
    assert j["deployment_id"] and j["seconds"] > 0
    d["nomad"]["env"] = {"GREETING": "hi"}
    write_services(svc, d)
    r = run(agent, "plan", "--services", str(svc))
    assert r.exit_code == 1 and '+ Env[GREETING]: "hi"' in r.output and "~ web2: update" in r.output
    r = run(agent, "deploy", "--services", str(svc), "--json")
    assert json.loads(r.output)["jobs"][0]["version"] == 1
    run(agent, "destroy", "web2", "--purge", "--yes")


def test_enforce_index_conflict_when_job_changed_after_plan(agent: RunningAgent, tmp_path: Path) -> None:
    from nomadmesh.deploy.apply import apply
    from nomadmesh.deploy.jobs import load_jobs
    from nomadmesh.deploy.live import live_plan
    from nomadmesh.progress import SilentProgress

    d = json.loads(json.dumps(WEB))
    d["service"]["name"] = "web3"
    svc = write_services(tmp_path / "s", d)
    a = api(agent)
    plan = live_plan(a, load_jobs(svc))
    assert plan.get("web3").action == "create"
    a.register(plan.get("web3").job, 0)  # someone else registers it between plan and apply
    report = apply(a, plan, SilentProgress(), detach=True)
    assert not report.ok
    assert "changed since it was planned" in report.results[0].error
    a.deregister("web3", purge=True)


def test_placement_failure_fails_fast_with_missing_drivers(agent: RunningAgent, tmp_path: Path) -> None:
    svc = write_services(tmp_path / "s", DOCK)
    r = run(agent, "deploy", "--services", str(svc), "--timeout", "60")
    assert r.exit_code == 1
    assert "cannot place task group 'dock': missing drivers" in r.output
    r = run(agent, "deploy", "--services", str(svc), "--timeout", "60")  # unchanged, still unplaceable
    assert r.exit_code == 1 and "missing drivers" in r.output
    run(agent, "destroy", "dock", "--purge", "--yes")


def test_crashing_task_fails_with_log_tail(agent: RunningAgent, tmp_path: Path) -> None:
    svc = write_services(tmp_path / "s", CRASH)
    r = run(agent, "deploy", "--services", str(svc), "--json")
    assert r.exit_code == 1
    (j,) = json.loads(r.output)["jobs"]
    assert not j["ok"] and "boom: database unreachable" in j["log_tail"]
    r = run(agent, "plan", "--services", str(svc))
    assert r.exit_code == 0  # nothing to change...
    r = run(agent, "deploy", "--services", str(svc))
    assert r.exit_code == 1 and "deployment failed" in r.output  # ...but not reported healthy
    run(agent, "destroy", "crash", "--purge", "--yes")


def test_destroy_and_plan_refuse_unmanaged_jobs(agent: RunningAgent, tmp_path: Path) -> None:
    a = api(agent)
    job = a.parse('job "theirs" {\n group "g" {\n task "t" {\n driver = "raw_exec"\n'
                  ' config {\n command = "sleep"\n args = ["60"]\n }\n }\n }\n}\n')
    a.register(job, 0)
    r = run(agent, "destroy", "theirs", "--yes")
    assert r.exit_code == 1 and "'theirs' is not managed by nomadmesh" in r.output
    assert a.job("theirs")["Stop"] is False
    d = json.loads(json.dumps(WEB))
    d["service"]["name"] = "theirs"
    r = run(agent, "plan", "--services", str(write_services(tmp_path / "s", d)))
    assert r.exit_code == 2 and "does not manage" in r.output
    a.deregister("theirs", purge=True)


def test_unreachable_target_is_one_line(tmp_path: Path) -> None:
    from support.net import free_port

    addr = f"http://127.0.0.1:{free_port()}"
    r = CliRunner().invoke(cli, ["status", "--nomad-addr", addr])
    assert r.exit_code == 1 and r.output == f"Error: cannot reach Nomad at {addr}: connection refused\n"
    r = CliRunner().invoke(cli, ["plan", "--services", str(write_services(tmp_path, WEB)), "--nomad-addr", addr])
    assert r.exit_code == 2 and f"cannot reach Nomad at {addr}" in r.output
    r = CliRunner().invoke(cli, ["deploy", "--services", str(tmp_path), "nope", "--nomad-addr", addr])
    assert r.exit_code == 2 and "unknown service 'nope'" in r.output


def test_preview_env_deploys_beside_the_main_one_and_destroy_env_removes_exactly_it(
        agent: RunningAgent, tmp_path: Path) -> None:
    d = json.loads(json.dumps(WEB))
    d["service"]["name"] = "web3"
    svc = write_services(tmp_path / "services", d)
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "pr7.json").write_text(json.dumps({"name_suffix": "-pr7"}))
    try:
        for extra in ((), ("--env", "pr7")):
            r = run(agent, "deploy", "--services", str(svc), "--detach", *extra)
            assert r.exit_code == 0, r.output
        assert api(agent).job("web3-pr7") is not None and api(agent).job("web3") is not None

        r = run(agent, "status", "--services", str(svc), "--env", "pr7", "--json")
        assert r.exit_code == 0, r.output
        assert [j["job"] for j in json.loads(r.output)] == ["web3-pr7"]

        r = run(agent, "destroy", "--services", str(svc), "--env", "pr7", "--purge", "--yes")
        assert r.exit_code == 0, r.output
        assert "Purging web3-pr7 ... done" in r.output and "web3 " not in r.output.replace("web3-pr7", "")
        assert api(agent).job("web3-pr7") is None
        assert api(agent).job("web3")["Stop"] is False
    finally:
        run(agent, "destroy", "web3", "--purge", "--yes")
        if api(agent).job("web3-pr7") is not None:
            run(agent, "destroy", "web3-pr7", "--purge", "--yes")


def test_up_takes_env_and_var_like_deploy(agent: RunningAgent, tmp_path: Path) -> None:
    d = json.loads(json.dumps(WEB))
    d["service"]["name"] = "web4"
    svc = write_services(tmp_path / "services", d)
    (tmp_path / "nomadmesh.json").write_text(json.dumps({"variables": {"mode": {"type": "string"}}}))
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "pr8.json").write_text(json.dumps(
        {"name_suffix": "-pr8", "services": {"web4": {"nomad": {"env": {"MODE": "preview"}}}}}))
    try:
        r = run(agent, "up", "--services", str(svc), "--env", "pr8", "--var", "mode=x")
        assert r.exit_code == 0, r.output
        assert f"Using Nomad at {agent.nomad_addr}" in r.output
        job = api(agent).job("web4-pr8")
        assert job is not None and api(agent).job("web4") is None
        assert job["TaskGroups"][0]["Tasks"][0]["Env"]["MODE"] == "preview"
    finally:
        run(agent, "destroy", "web4-pr8", "--purge", "--yes")


# A Connect worker without a port (issue 12 item 4): it still gets its sidecar and reaches its upstream.
FAST = {"min_healthy_time": "500ms", "healthy_deadline": "60s", "progress_deadline": "2m"}
BACKEND = {"service": {"name": "backend", "port": 8080, "connect": {"sidecar_service": {}}},
           "nomad": {"driver": "raw_exec", "command": "python3",
                     "args": ["-m", "http.server", "8080", "--bind", "127.0.0.1"],
                     "update": {**FAST, "health_check": "task_states"}}}
POLL = ("import time, urllib.request\n"
        "while True:\n"
        "    try:\n"
        "        print('upstream', urllib.request.urlopen('http://127.0.0.1:6001/', timeout=2).status, flush=True)\n"
        "    except Exception as e:\n"
        "        print('error', e, flush=True)\n"
        "    time.sleep(0.5)\n")
WORKER = {"service": {"name": "worker", "connect": {"sidecar_service": {"proxy": {"upstreams": [
              {"destination_name": "backend", "local_bind_port": 6001}]}}}},
          "nomad": {"driver": "raw_exec", "command": "python3", "args": ["-c", POLL],
                    "update": {**FAST, "health_check": "task_states"}}}


def test_a_worker_without_a_port_reaches_its_upstream_through_its_sidecar(agent: RunningAgent, tmp_path: Path) -> None:
    svc = write_services(tmp_path / "s", BACKEND, WORKER)
    try:
        r = run(agent, "deploy", "--services", str(svc), "--timeout", "120")
        assert r.exit_code == 0, r.output

        def answered() -> bool:
            return "upstream 200" in run(agent, "logs", "worker").output

        wait_until(answered, timeout=60, what="the worker's request through its upstream")
    finally:
        for name in ("worker", "backend"):
            run(agent, "destroy", name, "--purge", "--yes")


# An http check on a named port (issue 12 item 4): only the metrics port answers, so the deploy turns
# healthy only when the sidecar's expose path leads to that port, not to the service port.
METERED = {"service": {"name": "metered", "port": 8080, "connect": {"sidecar_service": {}}},
           "nomad": {"driver": "raw_exec", "command": "python3",
                     "args": ["-m", "http.server", "9102", "--bind", "127.0.0.1"],
                     "ports": {"metrics": 9102},
                     "checks": [{"type": "http", "path": "/", "port": "metrics", "interval": "1s", "timeout": "1s"}],
                     "update": FAST}}


def test_an_http_check_on_a_named_port_turns_healthy(agent: RunningAgent, tmp_path: Path) -> None:
    svc = write_services(tmp_path / "s", METERED)
    try:
        r = run(agent, "deploy", "--services", str(svc), "--timeout", "120")
        assert r.exit_code == 0, r.output
        assert r.output.splitlines()[-2].startswith("Waiting for metered ... healthy")
    finally:
        run(agent, "destroy", "metered", "--purge", "--yes")

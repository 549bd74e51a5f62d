"""Issue 12's shop, end to end on the real agent with real Envoy sidecars.

One project made by `nomadmesh init`, described as the issue's shop: `web` with two named ports
(http + metrics) and its check on `metrics`, a `template` block (env = true) and a `constraint`;
`api`, which web calls through an upstream, with `sidecar_task` resources; `worker`, without a
port, which calls api through its own sidecar. `envs/prod.json` runs api 3 times; `envs/pr42.json`
is a preview environment (`name_suffix`). No docker on this machine: every service is a raw_exec
python app (shop_app.py, written into the project).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from test_cli_deploy import agent, api, run  # noqa: F401  (module fixture)

from nomadmesh.cli.main import cli
from support.agents import RunningAgent
from support.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.envoy]

SHOP_APP = '''"""The shop's three roles: python3 ../shop_app.py web|api|worker."""
import json, os, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = sys.argv[1]


def serve(bind, port, answer):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                body, code = answer(self.path), 200
            except Exception as e:  # the upstream failed: say so
                body, code = {"error": str(e)}, 502
            data = (json.dumps(body) + "\\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    ThreadingHTTPServer((bind, port), H).serve_forever()


def call(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return json.loads(r.read())


if ROLE == "api":
    serve("127.0.0.1", 8080, lambda path: {"api": os.environ["NOMAD_JOB_NAME"]})
elif ROLE == "web":
    threading.Thread(target=serve, args=("127.0.0.1", 9102, lambda path: {"metrics": "ok"}), daemon=True).start()
    serve("0.0.0.0", 8080, lambda path: {"web": os.environ["NOMAD_JOB_NAME"], "greeting": os.environ["GREETING"],
                                         "api": call(6001)})
else:
    while True:
        try:
            print("upstream", json.dumps(call(6002)), flush=True)
        except Exception as e:
            print("error", e, flush=True)
        time.sleep(0.5)
'''
FAST = {"min_healthy_time": "500ms", "healthy_deadline": "60s", "progress_deadline": "2m"}


def _exec(role: str) -> dict[str, Any]:
    return {"driver": "raw_exec", "command": "python3", "args": ["../shop_app.py", role], "work_dir": "."}


WEB = {
    "service": {"name": "web", "port": 8080, "connect": {"sidecar_service": {"proxy": {"upstreams": [
        {"destination_name": "api", "local_bind_port": 6001}]}}}},
    "nomad": {**_exec("web"), "ports": {"http": 8080, "metrics": 9102}, "publish": 0, "update": FAST,
              "checks": [{"type": "http", "path": "/metrics", "port": "metrics", "interval": "1s", "timeout": "1s"}],
              "group": {"constraint": [{"attribute": "${attr.kernel.name}", "value": "linux"}]},
              "task": {"template": [{
                  "data": 'GREETING={{ keyOrDefault "shop/greeting" "hello from the template" }}\n'
                          'WEB_ALLOC={{ env "NOMAD_ALLOC_ID" }}\n',
                  "destination": "local/web.env", "env": True, "perms": "0600"}]}},
}
API = {
    "service": {"name": "api", "port": 8080, "connect": {"sidecar_service": {}}},
    "nomad": {**_exec("api"), "update": FAST,
              "checks": [{"type": "http", "path": "/", "interval": "1s", "timeout": "1s"}],
              "sidecar_task": {"resources": {"cpu": 50, "memory": 96}}},
}
WORKER = {
    "service": {"name": "worker", "connect": {"sidecar_service": {"proxy": {"upstreams": [
        {"destination_name": "api", "local_bind_port": 6002}]}}}},
    "nomad": {**_exec("worker"), "update": {**FAST, "health_check": "task_states"}},
}
PROD = {"services": {"api": {"nomad": {"count": 3}}, "web": {"service": {"tags": ["prod"]}}}}
PREVIEW = {"name_suffix": "-pr42"}


def make_shop(root: Path) -> Path:
    """`nomadmesh init`, its example replaced by the shop."""
    r = CliRunner().invoke(cli, ["init", str(root)])
    assert r.exit_code == 0, r.output
    shutil.rmtree(root / "services" / "hello")
    (root / "services" / "shop_app.py").write_text(SHOP_APP)
    for d in (WEB, API, WORKER):
        folder = root / "services" / d["service"]["name"]
        folder.mkdir()
        (folder / "service.json").write_text(json.dumps(d, indent=2) + "\n")
    (root / "envs" / "prod.json").write_text(json.dumps(PROD, indent=2) + "\n")
    (root / "envs" / "pr42.json").write_text(json.dumps(PREVIEW, indent=2) + "\n")
    return root


def rendered(root: Path, env: str) -> dict[str, bytes]:
    out = root / f"jobs-{env}"
    r = CliRunner().invoke(cli, ["render", "--services", str(root / "services"), "--env", env, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_the_shop_renders_identically_from_two_copies(tmp_path: Path) -> None:
    one = make_shop(tmp_path / "one")
    two = tmp_path / "elsewhere" / "two"
    shutil.copytree(one, two)
    for env in ("prod", "pr42"):
        first, second = rendered(one, env), rendered(two, env)
        assert first == second
        suffix = "-pr42" if env == "pr42" else ""
        assert sorted(first) == [f"{n}{suffix}.nomad.hcl" for n in ("api", "web", "worker")]
        for text in first.values():
            assert str(tmp_path).encode() not in text
    prod = rendered(one, "prod")
    assert b"count = 3" in prod["api.nomad.hcl"]
    web = prod["web.nomad.hcl"].decode()
    flat = re.sub(r"[ ]+", " ", web)  # HCL aligns the `=` of neighbouring attributes
    for piece in ('port "metrics"', "${attr.kernel.name}", 'destination = "local/web.env"', "env = true",
                  '{{ keyOrDefault \\"shop/greeting\\"'):
        assert piece in flat, piece
    assert 'destination_name = "api-pr42"' in rendered(one, "pr42")["web-pr42.nomad.hcl"].decode()


def _submission(target: RunningAgent, job: str) -> dict[str, Any]:
    r = requests.get(f"{target.nomad_addr}/v1/job/{job}/submission",
                     params={"version": api(target).job(job)["Version"]}, timeout=10)
    r.raise_for_status()
    return r.json()


def _web_answer(target: RunningAgent, job: str) -> dict[str, Any] | None:
    status = {j["job"]: j for j in json.loads(run(target, "status", "--json").output)}
    addresses = (status.get(job) or {}).get("addresses") or []
    if not addresses:
        return None
    try:
        r = requests.get(f"http://{addresses[0]}/", timeout=5)
    except requests.RequestException:
        return None
    return r.json() if r.status_code == 200 else None


def _hash(files: dict[str, bytes]) -> str:
    return hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()


def test_the_shop_deploys_prod_and_a_preview_beside_it(agent: RunningAgent, tmp_path: Path) -> None:  # noqa: F811
    shop = make_shop(tmp_path / "shop")
    services = str(shop / "services")
    files = {"prod": rendered(shop, "prod"), "pr42": rendered(shop, "pr42")}
    copy = shutil.copytree(shop, tmp_path / "clone")
    assert _hash(rendered(copy, "prod")) == _hash(files["prod"])
    prod_jobs, preview_jobs = ["api", "web", "worker"], ["api-pr42", "web-pr42", "worker-pr42"]
    try:
        r = run(agent, "deploy", "--services", services, "--env", "prod", "--timeout", "240")
        assert r.exit_code == 0, r.output
        for job in prod_jobs:  # what runs is exactly the file render wrote
            assert _submission(agent, job)["Source"].encode() == files["prod"][f"{job}.nomad.hcl"], job
        status = {j["job"]: j for j in json.loads(run(agent, "status", "--json").output)}
        for job in prod_jobs:
            assert status[job]["deployment"] == "successful", status[job]
        assert len(status["api"]["allocations"]) == 3
        api_tasks = {t["Name"]: t for t in api(agent).job("api")["TaskGroups"][0]["Tasks"]}
        assert api_tasks["connect-proxy-api"]["Resources"]["CPU"] == 50  # sidecar_task resources
        assert api_tasks["connect-proxy-api"]["Resources"]["MemoryMB"] == 96
        web_group = api(agent).job("web")["TaskGroups"][0]
        assert web_group["Constraints"] == [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]
        assert all(a["sidecar"] == "running" for job in prod_jobs for a in status[job]["allocations"])

        # web -> api through both sidecars; the greeting came from the template block (env = true)
        answer = wait_until(lambda: _web_answer(agent, "web"), 60, what="web's answer through its upstream")
        assert answer == {"web": "web", "greeting": "hello from the template", "api": {"api": "api"}}
        (web_alloc,) = [a for a in requests.get(f"{agent.nomad_addr}/v1/job/web/allocations", timeout=10).json()
                        if a["ClientStatus"] == "running"]
        env_file = agent.alloc_dir / web_alloc["ID"] / "web" / "local" / "web.env"
        assert env_file.read_text() == f"GREETING=hello from the template\nWEB_ALLOC={web_alloc['ID']}\n"
        assert env_file.stat().st_mode & 0o777 == 0o600
        wait_until(lambda: 'upstream {"api": "api"}' in run(agent, "logs", "worker").output, 60,
                   what="the worker's call through its sidecar")

        r = run(agent, "deploy", "--services", services, "--env", "pr42", "--timeout", "240")
        assert r.exit_code == 0, r.output
        for job in preview_jobs:
            assert _submission(agent, job)["Source"].encode() == files["pr42"][f"{job}.nomad.hcl"], job
        answer = wait_until(lambda: _web_answer(agent, "web-pr42"), 60, what="the preview web's answer")
        assert answer == {"web": "web-pr42", "greeting": "hello from the template", "api": {"api": "api-pr42"}}
        wait_until(lambda: 'upstream {"api": "api-pr42"}' in run(agent, "logs", "worker-pr42").output, 60,
                   what="the preview worker's call")

        r = run(agent, "destroy", "--services", services, "--env", "pr42", "--purge", "--yes")
        assert r.exit_code == 0, r.output
        for job in preview_jobs:
            assert api(agent).job(job) is None
        for job in prod_jobs:
            assert api(agent).job(job)["Stop"] is False
        assert _web_answer(agent, "web") == {"web": "web", "greeting": "hello from the template",
                                             "api": {"api": "api"}}
    finally:
        for job in prod_jobs + preview_jobs:
            if api(agent).job(job) is not None:
                run(agent, "destroy", job, "--purge", "--yes")

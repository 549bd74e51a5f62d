"""`nomadmesh up` starts an agent in ./.nomadmesh when none answers, deploys, says how to call;
`down` purges, stops that agent and leaves no namespace; both are idempotent. Subprocesses in a
tmp cwd, free ports, an own bridge."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from test_cli_deploy import WEB, write_services

from nomadmesh.agent.datadir import alloc_root
from nomadmesh.deploy.local_agent import is_our_agent
from support.net import free_ports, free_tcp_udp_port
from support.paths import REPO

pytestmark = pytest.mark.root


def test_up_then_down(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    # Picked together: free_port twice may return the same just-released port (support/net.py).
    nomad_port, consul_port, grpc_port = free_ports(3)
    dns_port = free_tcp_udp_port(avoid=frozenset({nomad_port, consul_port, grpc_port}))
    env = {**os.environ, "NOMADMESH_CNI_BRIDGE": f"nmu{tag}", "NOMADMESH_NETNS_PREFIX": f"nmu{tag}-",
           "NOMADMESH_CNI_SUBNET": f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24",
           "NOMAD_ADDR": f"http://127.0.0.1:{nomad_port}", "CONSUL_HTTP_ADDR": f"http://127.0.0.1:{consul_port}",
           "NOMADMESH_GRPC_PORT": str(grpc_port), "NOMADMESH_DNS_PORT": str(dns_port), "PYTHONPATH": str(REPO)}
    write_services(tmp_path / "services", WEB)

    def nm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nomadmesh", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    pid = None
    try:
        r = nm("up")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Started nomadmesh agent --dev --default-policy deny" in r.stdout  # zero trust by default
        check = requests.get(f"{env['CONSUL_HTTP_ADDR']}/v1/connect/intentions/check",
                             params={"source": "nobody", "destination": "nothing"}, timeout=5)
        assert check.json() == {"Allowed": False}
        record = json.loads((tmp_path / ".nomadmesh" / "agent.json").read_text())
        pid = record["pid"]
        assert is_our_agent(pid) and (tmp_path / ".nomadmesh" / "agent.log").exists()
        url = re.search(r"curl (http://\S+)", r.stdout).group(1)  # type: ignore[union-attr]
        assert requests.get(url, timeout=5).status_code == 200

        r = nm("up")  # agent answers now: reused, job unchanged
        assert r.returncode == 0 and "Using Nomad at" in r.stdout and "unchanged (version 0)" in r.stdout
        r = nm("history", "--json")  # `up` records its deploy as a release; the unchanged one adds none
        assert [rel["jobs"] for rel in json.loads(r.stdout)["releases"]] == [{"web": 0}], r.stdout + r.stderr

        r = nm("down")
        assert r.returncode == 0, r.stderr
        assert "Purged web" in r.stdout and f"Agent (pid {pid}) stopped" in r.stdout
        assert not is_our_agent(pid) and not (tmp_path / ".nomadmesh" / "agent.json").exists()
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"nmu{tag}-" not in netns
        r = nm("down")  # idempotent
        assert r.returncode == 0 and "No agent started by `nomadmesh up` here" in r.stdout
    finally:
        if pid and is_our_agent(pid):
            os.kill(pid, 9)
        subprocess.run(["ip", "link", "delete", f"nmu{tag}"], capture_output=True)
        shutil.rmtree(alloc_root((tmp_path / ".nomadmesh" / "data").resolve(), None), ignore_errors=True)

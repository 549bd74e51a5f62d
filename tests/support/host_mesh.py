"""The seed's workflow on the host, shared by the connect sidecar-for / negative / restart tests.

tax, invoice (upstream tax) and order (upstream invoice) are registered on a real agent through
/v1/agent/service/register with Connect.SidecarService, exactly like the tutorial's consul.d
files, except that every port is a free one (apps, sidecars, upstream binds): the tutorial's fixed
5000-5002/6001-6002 would collide with other tests. Their apps are services/app.py on 127.0.0.1
with the seed's INV_SVC_URL / TAX_SVC_URL pointing at the upstream listeners. Each sidecar is
`python -m nomadmesh connect envoy --sidecar-for <name>`, which execs Envoy in its own process.

The sidecars' "listening" checks run every second (the default is Consul's 10 s), so a new proxy
becomes an upstream endpoint without a 10 s wait; everything else is Consul's defaults.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from support.agents import RunningAgent
from support.connect_support import envoy_admin_stats
from support.net import free_port
from support.paths import REPO
from support.processes import stop_process
from support.waiting import wait_until

NAMES = ("tax", "invoice", "order")  # registration and start order: upstreams first
UPSTREAM = {"order": ("invoice", "INV_SVC_URL"), "invoice": ("tax", "TAX_SVC_URL")}
CHAIN = [{"Service": n, "Version": 1.0} for n in ("Order", "Invoice", "Tax")]


@dataclass
class HostMesh:
    agent: RunningAgent
    workdir: Path
    app_ports: dict[str, int] = field(default_factory=dict)
    proxy_ports: dict[str, int] = field(default_factory=dict)
    upstream_ports: dict[str, int] = field(default_factory=dict)  # caller -> its upstream's local bind port
    admin_ports: dict[str, int] = field(default_factory=dict)
    apps: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    envoys: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # --- calls --------------------------------------------------------------------------------

    def order(self, timeout: float = 5) -> tuple[int, str]:
        r = requests.get(f"http://127.0.0.1:{self.app_ports['order']}/", timeout=timeout)
        return r.status_code, r.text

    def chain_ok(self) -> bool:
        status, body = self.order()
        return status == 200 and [json.loads(line) for line in body.splitlines()] == CHAIN

    def order_fails_naming(self, *names: str) -> bool:
        status, body = self.order()
        return status == 502 and all(n in body for n in names)

    def intention(self, source: str, destination: str, action: str | None) -> None:
        """Write (action) or delete (None) the intention source -> destination via /exact."""
        url = f"{self.agent.consul_addr}/v1/connect/intentions/exact?source={source}&destination={destination}"
        r = requests.put(url, json={"Action": action}, timeout=5) if action else requests.delete(url, timeout=5)
        r.raise_for_status()

    def envoy_stats(self, name: str, regex: str) -> dict[str, int]:
        return envoy_admin_stats(self.admin_ports[name], regex)

    # --- lifecycle ----------------------------------------------------------------------------

    def definition(self, name: str) -> dict[str, Any]:
        """The tutorial's consul.d service definition (agent API spelling), on this mesh's ports."""
        upstreams = []
        if name in UPSTREAM:
            upstreams = [{"DestinationName": UPSTREAM[name][0], "LocalBindPort": self.upstream_ports[name]}]
        port = self.proxy_ports[name]
        return {
            "Name": name, "Tags": [name], "Port": self.app_ports[name],
            "Connect": {"SidecarService": {
                "Port": port,
                "Proxy": {"Upstreams": upstreams},
                "Checks": [
                    {"Name": "Connect Sidecar Listening", "TCP": f"127.0.0.1:{port}", "Interval": "1s"},
                    {"Name": f"Connect Sidecar Aliasing {name}", "AliasService": name},
                ],
            }},
        }

    def start(self) -> HostMesh:
        for name in NAMES:
            self.app_ports[name], self.proxy_ports[name] = free_port(), free_port()
            self.admin_ports[name] = free_port()
            if name in UPSTREAM:
                self.upstream_ports[name] = free_port()
        for name in NAMES:
            r = requests.put(f"{self.agent.consul_addr}/v1/agent/service/register", json=self.definition(name),
                             timeout=5)
            assert r.status_code == 200, r.text
            self.start_app(name)
            self.start_envoy(name)
        # Six processes and three Envoys start here: on a busy machine (parallel workers) that may take a while.
        wait_until(self.chain_ok, 60, step=0.05, what="order -> invoice -> tax through the sidecars")
        return self

    def start_app(self, name: str) -> None:
        env = {"PATH": "/usr/bin:/bin", "PORT": str(self.app_ports[name]), "BIND_ADDR": "127.0.0.1"}
        if name in UPSTREAM:
            env[UPSTREAM[name][1]] = f"http://127.0.0.1:{self.upstream_ports[name]}"
        with open(self.workdir / f"{name}-app.log", "ab") as log:
            self.apps[name] = subprocess.Popen([sys.executable, str(REPO / "services" / "app.py"), name],
                                               env=env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL)

    def start_envoy(self, name: str) -> None:
        argv = [sys.executable, "-m", "nomadmesh", "connect", "envoy", "--sidecar-for", name,
                "--consul-addr", self.agent.consul_addr, "--admin-bind", f"127.0.0.1:{self.admin_ports[name]}",
                "--log-level", "warning"]
        with open(self.workdir / f"{name}-envoy.log", "ab") as log:
            self.envoys[name] = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        for proc in list(self.envoys.values()) + list(self.apps.values()):
            stop_process(proc)

    def leftovers(self) -> list[int]:
        return [p.pid for p in list(self.envoys.values()) + list(self.apps.values()) if p.poll() is None]


def envoy_is_envoy(proc: subprocess.Popen[bytes]) -> bool:
    """The `nomadmesh connect envoy` process became Envoy itself (exec, not a child)."""
    exe = Path(f"/proc/{proc.pid}/exe")
    return exe.exists() and exe.resolve().name == "envoy"

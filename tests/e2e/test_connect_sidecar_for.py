"""Issue 4 item 7: `nomadmesh connect envoy --sidecar-for <id>`, the seed's workflow without Nomad.

Services registered through /v1/agent/service/register with Connect.SidecarService; their sidecars
are Envoys started by the command on the host against the agent's xDS server (its gRPC port, read
from /v1/agent/self); order -> invoice -> tax answers through mTLS, and intentions written through
/v1/connect/intentions/exact are enforced by those Envoys (the printed times are
information; the bounds are bench/mesh_agent.py's intention figures).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from nomadmesh.connect import sidecar_for
from support.agents import RunningAgent
from support.host_mesh import HostMesh, envoy_is_envoy
from support.paths import REPO
from support.waiting import seconds_until, wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nomadmesh", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


# --- pure parts -------------------------------------------------------------------------------

SERVICES = {
    "web": {"ID": "web", "Service": "web", "Port": 8080},
    "web-sidecar-proxy": {"ID": "web-sidecar-proxy", "Service": "web-sidecar-proxy", "Kind": "connect-proxy",
                          "Port": 21000, "Proxy": {"DestinationServiceName": "web", "DestinationServiceID": "web"}},
    "db": {"ID": "db", "Service": "db", "Port": 5432},
}


def test_find_sidecar_by_destination_service_id() -> None:
    assert sidecar_for.find_sidecar(SERVICES, "web")["ID"] == "web-sidecar-proxy"
    with pytest.raises(sidecar_for.SidecarError, match="db: the service has no sidecar proxy"):
        sidecar_for.find_sidecar(SERVICES, "db")
    with pytest.raises(sidecar_for.SidecarError, match="nope: no service with that ID on the agent"):
        sidecar_for.find_sidecar(SERVICES, "nope")
    two = dict(SERVICES, other={**SERVICES["web-sidecar-proxy"], "ID": "other"})
    with pytest.raises(sidecar_for.SidecarError, match=r"more than one sidecar proxy .*other, web-sidecar-proxy"):
        sidecar_for.find_sidecar(two, "web")


def test_grpc_port_and_addresses() -> None:
    assert sidecar_for.grpc_port({"xDS": {"Ports": {"Plaintext": 8502, "TLS": -1}}}) == 8502
    assert sidecar_for.grpc_port({"DebugConfig": {"GRPCPort": 8503}}) == 8503  # Consul before 1.14
    assert sidecar_for.grpc_port({"DebugConfig": {"GRPCPort": -1}}) is None
    published = {"DebugConfig": {"GRPCPort": -1, "GRPCAddrs": ["tcp://127.0.0.1:1", "unix:///d/xds.sock"]}}
    assert sidecar_for.grpc_unix_addr(published) == "unix:///d/xds.sock"
    assert sidecar_for.grpc_unix_addr({"DebugConfig": {"GRPCAddrs": ["tcp://127.0.0.1:8502"]}}) is None
    assert sidecar_for.parse_grpc_addr("http://127.0.0.1:8502") == "127.0.0.1:8502"
    assert sidecar_for.parse_grpc_addr("localhost:8502") in ("127.0.0.1:8502", "::1:8502")
    assert sidecar_for.parse_grpc_addr("/run/consul.sock") == "unix:///run/consul.sock"
    with pytest.raises(sidecar_for.SidecarError, match="--grpc-addr 'nope'"):
        sidecar_for.parse_grpc_addr("nope")
    with pytest.raises(sidecar_for.SidecarError, match="--admin-bind '19000'"):
        sidecar_for.sidecar_bootstrap(SERVICES["web-sidecar-proxy"], "127.0.0.1:8502", "19000")


def test_bootstrap_names_the_proxy_and_points_at_the_xds_port() -> None:
    boot = sidecar_for.sidecar_bootstrap(SERVICES["web-sidecar-proxy"], "127.0.0.1:8502", "127.0.0.1:19005")
    assert boot["node"] == {"id": "web-sidecar-proxy", "cluster": "web"}
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19005}
    (ads,) = boot["static_resources"]["clusters"]
    endpoint = ads["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert endpoint == {"socket_address": {"address": "127.0.0.1", "port_value": 8502}}


# --- against a running agent ------------------------------------------------------------------

def test_bootstrap_flag_prints_what_envoy_would_get(module_agent: RunningAgent) -> None:
    # The tutorial's definition as written (no sidecar port, default checks): Consul's defaults apply.
    r = requests.put(f"{module_agent.consul_addr}/v1/agent/service/register",
                     json={"name": "sfprint", "port": 5999,
                           "connect": {"sidecar_service": {"proxy": {"upstreams": [
                               {"destination_name": "tax", "local_bind_port": 6002}]}}}},
                     timeout=5)
    assert r.status_code == 200, r.text
    out = cli("connect", "envoy", "--sidecar-for", "sfprint", "--consul-addr", module_agent.consul_addr,
              "--admin-bind", "127.0.0.1:19100", "--bootstrap")
    assert out.returncode == 0, out.stderr
    boot = json.loads(out.stdout)
    assert boot["node"] == {"id": "sfprint-sidecar-proxy", "cluster": "sfprint"}
    # The agent has no xDS TCP port by default: its published unix socket (DebugConfig.GRPCAddrs).
    addr = boot["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert addr["endpoint"]["address"] == {"pipe": {"path": f"{module_agent.data_dir}/xds.sock"}}
    assert boot["admin"]["address"]["socket_address"]["port_value"] == 19100
    # --grpc-addr wins over what the agent publishes.
    out = cli("connect", "envoy", "--sidecar-for", "sfprint", "--consul-addr", module_agent.consul_addr,
              "--grpc-addr", "unix:///tmp/x.sock", "--bootstrap")
    addr = json.loads(out.stdout)["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
    assert addr["lb_endpoints"][0]["endpoint"]["address"] == {"pipe": {"path": "/tmp/x.sock"}}


def test_unknown_service_is_an_error_naming_it(module_agent: RunningAgent) -> None:
    out = cli("connect", "envoy", "--sidecar-for", "no-such-svc", "--consul-addr", module_agent.consul_addr)
    assert out.returncode == 1
    assert "Error: --sidecar-for no-such-svc: no service with that ID on the agent" in out.stderr
    assert "Traceback" not in out.stderr


def test_seed_workflow_through_host_sidecars(host_mesh: HostMesh) -> None:
    mesh = host_mesh
    assert all(envoy_is_envoy(p) for p in mesh.envoys.values())  # exec'd: the CLI process is Envoy
    status, body = mesh.order()
    assert status == 200
    assert [json.loads(line) for line in body.splitlines()] == [
        {"Service": "Order", "Version": 1.0}, {"Service": "Invoice", "Version": 1.0},
        {"Service": "Tax", "Version": 1.0}]
    # Each hop was mTLS: TLS handshakes on invoice's and tax's public listeners.
    for name in ("invoice", "tax"):
        key = f"listener.0.0.0.0_{mesh.proxy_ports[name]}.ssl.handshake"
        assert mesh.envoy_stats(name, r"ssl\.handshake").get(key, 0) >= 1, name

    mesh.intention("invoice", "tax", "deny")
    took_deny = seconds_until(lambda: mesh.order_fails_naming("invoice", "tax"), 5, what="deny invoice -> tax")
    status, body = mesh.order()
    assert status == 502 and "tax" in body
    mesh.intention("invoice", "tax", None)
    took_restore = seconds_until(mesh.chain_ok, 5, what="chain restored after delete")
    print(f"\nhost sidecars: deny enforced in {took_deny * 1000:.0f} ms, delete in {took_restore * 1000:.0f} ms")


def test_sidecar_that_goes_away_stops_being_an_endpoint(host_mesh: HostMesh) -> None:
    """Deregistering tax (its sidecar goes with it) leaves invoice's upstream without endpoints."""
    mesh = host_mesh
    requests.put(f"{mesh.agent.consul_addr}/v1/agent/service/deregister/tax", timeout=5).raise_for_status()
    wait_until(lambda: mesh.order_fails_naming("tax"), 2.0, what="tax gone")
    started = time.monotonic()
    r = requests.put(f"{mesh.agent.consul_addr}/v1/agent/service/register", json=mesh.definition("tax"), timeout=5)
    assert r.status_code == 200
    wait_until(mesh.chain_ok, 5.0, what="tax back")
    assert time.monotonic() - started < 5

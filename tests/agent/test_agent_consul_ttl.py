"""TTL checks and tagged addresses on the dev agent over real HTTP (py-consul): a TTL check starts
critical, pass/warn/fail/update set it, it turns critical with Consul's "TTL expired" output when
not updated within its TTL, updating a check of another type is Consul's 500, and a service
registered with an IP carries Consul's lan_ipv4/wan_ipv4 (or _ipv6) tagged addresses."""
from __future__ import annotations

from collections.abc import Iterator

import consul
import pytest
import requests

from support.agents import RunningAgent
from support.waiting import wait_until


@pytest.fixture
def c(module_agent: RunningAgent) -> Iterator[consul.Consul]:
    client = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    try:
        yield client
    finally:
        for sid in ("ttl-short", "ttl-tcp", "ttl-v4", "ttl-v6"):
            client.agent.service.deregister(sid)


def test_ttl_check_starts_critical_and_expires(c: consul.Consul) -> None:
    c.agent.service.register("ttl-short", service_id="ttl-short", check=consul.Check.ttl("1s"))
    check_id = "service:ttl-short"
    assert c.agent.checks()[check_id]["Status"] == "critical"
    assert c.agent.check.ttl_pass(check_id, notes="all good") is True
    assert c.agent.checks()[check_id]["Status"] == "passing"
    expired = wait_until(lambda: c.agent.checks()[check_id]["Status"] == "critical" and c.agent.checks()[check_id],
                         timeout=15, what="the TTL check to expire")
    assert expired["Output"] == "TTL expired (last output before timeout follows): all good"


def test_updating_a_check_that_is_not_ttl_is_refused(module_agent: RunningAgent, c: consul.Consul) -> None:
    c.agent.service.register("ttl-tcp", service_id="ttl-tcp", port=1,
                             check=consul.Check.tcp("127.0.0.1", 1, "30s"))
    resp = requests.put(f"http://127.0.0.1:{module_agent.consul_port}/v1/agent/check/pass/service:ttl-tcp",
                        timeout=10)
    assert resp.status_code == 500 and 'CheckID "service:ttl-tcp" does not have associated TTL' in resp.text
    # The refused pass set nothing: the tcp check (nothing listens on port 1) is not passing. Its
    # Output is the check runner's to change at any time, so it is not compared.
    assert c.agent.checks()["service:ttl-tcp"]["Status"] != "passing"


def test_service_tagged_addresses_use_consuls_casing(c: consul.Consul) -> None:
    c.agent.service.register("ttl-v4", service_id="ttl-v4", address="10.1.2.3", port=8080)
    c.agent.service.register("ttl-v6", service_id="ttl-v6", address="fd00::5", port=9090)
    services = c.agent.services()
    assert services["ttl-v4"]["TaggedAddresses"] == {"lan_ipv4": {"Address": "10.1.2.3", "Port": 8080},
                                                     "wan_ipv4": {"Address": "10.1.2.3", "Port": 8080}}
    assert services["ttl-v6"]["TaggedAddresses"] == {"lan_ipv6": {"Address": "fd00::5", "Port": 9090},
                                                     "wan_ipv6": {"Address": "fd00::5", "Port": 9090}}
    [row] = c.catalog.service("ttl-v4")[1]
    assert row["ServiceTaggedAddresses"]["lan_ipv4"] == {"Address": "10.1.2.3", "Port": 8080}
    node = c.catalog.nodes()[1][0]
    assert set(node["TaggedAddresses"]) >= {"lan", "lan_ipv4", "wan", "wan_ipv4"}


def test_check_register_pass_and_deregister(module_agent: RunningAgent, c: consul.Consul) -> None:
    assert c.agent.check.register("ttl-node-check", check=consul.Check.ttl("60s"), notes="node-level") is True
    chk = c.agent.checks()["ttl-node-check"]  # the ID defaults to the name
    assert (chk["Status"], chk["Type"], chk["ServiceID"], chk["Notes"]) == ("critical", "ttl", "", "node-level")
    assert c.agent.check.ttl_pass("ttl-node-check", notes="ok") is True
    assert c.agent.check.register("ttl-node-check", check=consul.Check.ttl("60s"), notes="node-level") is True
    assert c.agent.checks()["ttl-node-check"]["Status"] == "passing"  # same definition: status kept
    assert "ttl-node-check" in [ch["CheckID"] for ch in c.health.node(c.agent.self()["Config"]["NodeName"])[1]]
    c.agent.service.register("ttl-v4", service_id="ttl-v4", address="10.1.2.3", port=8080)
    assert c.agent.check.register("svc check", check=consul.Check.ttl("60s"), check_id="ttl-svc-check",
                                  service_id="ttl-v4") is True
    assert c.agent.checks()["ttl-svc-check"]["ServiceName"] == "ttl-v4"
    assert c.agent.check.deregister("ttl-node-check") is True
    assert "ttl-node-check" not in c.agent.checks()
    resp = requests.put(f"http://127.0.0.1:{module_agent.consul_port}/v1/agent/check/deregister/ttl-node-check",
                        timeout=10)
    assert resp.status_code == 404 and 'Unknown check ID "ttl-node-check"' in resp.text


@pytest.mark.parametrize(("body", "status", "text"), [
    ({"TTL": "10s"}, 400, "Missing check name"),
    ({"Name": "x", "TTL": "10s", "Status": "bad"}, 400, "Status for checks must 'passing', 'warning', 'critical'"),
    # Consul's AgentRegisterCheck answers 404 for a service it does not have (since 1.11)
    ({"Name": "x", "TTL": "10s", "ServiceID": "no-such"}, 404, 'ServiceID "no-such" does not exist'),
    ({"Name": "x"}, 400, "Invalid check: "),
    ({"Name": 5, "TTL": "10s"}, 400, "Request decode failed"),
])
def test_check_register_refusals(module_agent: RunningAgent, c: consul.Consul, body: object, status: int,
                                 text: str) -> None:
    resp = requests.put(f"http://127.0.0.1:{module_agent.consul_port}/v1/agent/check/register", json=body,
                        timeout=10)
    assert resp.status_code == status and text in resp.text, resp.text
    assert "x" not in c.agent.checks()


def test_http_check_on_the_agent_root_passes(module_agent: RunningAgent, c: consul.Consul) -> None:
    """Consul redirects / to its UI (301 → 200), so py-consul's suite sees an http check on the
    agent's own address pass."""
    resp = requests.get(f"http://127.0.0.1:{module_agent.consul_port}/", allow_redirects=False, timeout=10)
    assert resp.status_code == 301 and resp.headers["Location"] == "/ui/"
    c.agent.check.register("ttl-root-http", check=consul.Check.http(f"http://127.0.0.1:{module_agent.consul_port}",
                                                                     "1s"))
    try:
        wait_until(lambda: c.agent.checks()["ttl-root-http"]["Status"] == "passing", timeout=15,
                   what="the http check on / to pass")
    finally:
        c.agent.check.deregister("ttl-root-http")

"""Consul's DNS interface on the agent's --dns-port, queried with dnspython over UDP and TCP:
service A/SRV records of healthy instances, tag filters (both spellings), Connect sidecars,
the node, NXDOMAIN with the zone's SOA, names outside the domain refused."""
from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import requests

from support.agents import RunningAgent, started_agents
from support.net import free_port
from support.paths import REPO
from support.waiting import wait_until

NODE = "dns-node"
Ask = Callable[[str, str], dns.message.Message]


@pytest.fixture(scope="module")
def sidecar_port() -> Iterator[int]:
    """What web-1's sidecar check probes: a listener standing in for its Envoy."""
    with socket.create_server(("127.0.0.1", 0)) as sidecar:
        yield sidecar.getsockname()[1]


@pytest.fixture(scope="module")
def dns_agent(tmp_path_factory: pytest.TempPathFactory, sidecar_port: int) -> Iterator[RunningAgent]:
    factory = started_agents(tmp_path_factory)
    try:
        yield _with_services(next(factory)("--node", NODE), sidecar_port)
    finally:
        factory.close()


def _with_services(agent: RunningAgent, sidecar_port: int) -> RunningAgent:
    register = f"{agent.consul_addr}/v1/agent/service/register"
    for body in (
        {"ID": "web-1", "Name": "web", "Tags": ["v1", "blue"], "Address": "127.0.0.11", "Port": 8081,
         "Connect": {"SidecarService": {"Port": sidecar_port}}},
        {"ID": "api-1", "Name": "api", "Address": "127.0.0.14", "Port": 8084, "Connect": {"SidecarService": {}}},
        {"ID": "web-2", "Name": "web", "Tags": ["v2"], "Address": "127.0.0.12", "Port": 8082},
        # A TTL check starts critical: this instance is not healthy and must never be answered.
        {"ID": "web-3", "Name": "web", "Tags": ["v1"], "Address": "127.0.0.13", "Port": 8083,
         "Check": {"TTL": "10m"}},
        {"ID": "db-1", "Name": "db", "Port": 5432},  # no address of its own: the node's
    ):
        requests.put(register, json=body, timeout=10).raise_for_status()
    requests.put(f"{agent.consul_addr}/v1/agent/check/fail/service:web-3", timeout=10).raise_for_status()
    return agent


@pytest.fixture(scope="module", params=["udp", "tcp"])
def ask(request: pytest.FixtureRequest, dns_agent: RunningAgent) -> Ask:
    transport = dns.query.udp if request.param == "udp" else dns.query.tcp

    def query(name: str, rdtype: str = "A") -> dns.message.Message:
        return transport(dns.message.make_query(name, rdtype), "127.0.0.1", port=dns_agent.dns_port, timeout=5)
    return query


def _answers(msg: dns.message.Message, rdtype: str) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for rd in rrset)


def test_service_a_records_are_the_healthy_instances(ask: Ask) -> None:
    msg = ask("web.service.consul", "A")
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    assert _answers(msg, "A") == ["127.0.0.11", "127.0.0.12"]  # web-3 is critical
    assert all(rrset.ttl == 0 for rrset in msg.answer)


def test_service_srv_records_name_ports_and_targets(ask: Ask) -> None:
    msg = ask("web.service.dc1.consul", "SRV")
    srv = sorted((rd.port, rd.target.to_text()) for rrset in msg.answer for rd in rrset)
    assert srv == [(8081, "7f00000b.addr.dc1.consul."), (8082, "7f00000c.addr.dc1.consul.")]
    extra = {rrset.name.to_text(): [rd.to_text() for rd in rrset] for rrset in msg.additional}
    assert extra == {"7f00000b.addr.dc1.consul.": ["127.0.0.11"], "7f00000c.addr.dc1.consul.": ["127.0.0.12"]}


def test_a_service_without_its_own_address_points_at_the_node(ask: Ask) -> None:
    msg = ask("db.service.consul", "SRV")
    assert [(rd.port, rd.target.to_text()) for rrset in msg.answer for rd in rrset] == \
        [(5432, f"{NODE}.node.dc1.consul.")]
    assert _answers(ask("db.service.consul", "A"), "A") == ["127.0.0.1"]


@pytest.mark.parametrize("name", ["v1.web.service.consul", "_web._v1.service.consul"])
def test_tag_filter_keeps_only_tagged_healthy_instances(ask: Ask, name: str) -> None:
    assert _answers(ask(name, "A"), "A") == ["127.0.0.11"]


def test_rfc2782_tcp_means_any_tag(ask: Ask) -> None:
    assert len(_answers(ask("_web._tcp.service.consul", "SRV"), "SRV")) == 2


def test_connect_name_answers_the_healthy_sidecar_proxies(ask: Ask, sidecar_port: int) -> None:
    # web-1's sidecar listens (its "Connect Sidecar Listening" check passes); api-1's does not.
    wait_until(lambda: _answers(ask("web.connect.consul", "SRV"), "SRV"), timeout=30,
               what="web's sidecar passing its TCP check")
    msg = ask("web.connect.consul", "SRV")
    assert [(rd.port, rd.target.to_text()) for rrset in msg.answer for rd in rrset] == \
        [(sidecar_port, f"{NODE}.node.dc1.consul.")]
    assert ask("api.connect.consul", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_node_name_answers_its_address(ask: Ask) -> None:
    assert _answers(ask(f"{NODE}.node.consul", "A"), "A") == ["127.0.0.1"]
    assert _answers(ask(f"{NODE}.node.dc1.consul", "A"), "A") == ["127.0.0.1"]


@pytest.mark.parametrize("name", ["nope.service.consul", "nope.connect.consul", "other.node.consul",
                                  "v9.web.service.consul", "web.service.dc9.consul", "junk.consul"])
def test_unknown_names_are_nxdomain_with_the_soa(ask: Ask, name: str) -> None:
    msg = ask(name, "A")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert not msg.answer
    [soa_rrset] = msg.authority
    soa = soa_rrset[0]
    assert (soa_rrset.name.to_text(), soa.mname.to_text(), soa.rname.to_text()) == \
        ("consul.", "ns.consul.", "hostmaster.consul.")
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (3600, 600, 86400, 0)


def test_a_type_with_no_records_is_an_empty_noerror(ask: Ask) -> None:
    msg = ask("web.service.consul", "AAAA")
    assert msg.rcode() == dns.rcode.NOERROR
    assert not msg.answer
    assert msg.authority[0].rdtype == dns.rdatatype.SOA


def test_names_outside_the_domain_are_refused(ask: Ask) -> None:
    assert ask("example.com", "A").rcode() == dns.rcode.REFUSED


def test_a_newly_registered_instance_is_answered_at_once(dns_agent: RunningAgent) -> None:
    requests.put(f"{dns_agent.consul_addr}/v1/agent/service/register",
                 json={"ID": "late-1", "Name": "late", "Address": "127.0.0.21", "Port": 9000}, timeout=10
                 ).raise_for_status()
    msg = dns.query.udp(dns.message.make_query("late.service.consul", "A"), "127.0.0.1", port=dns_agent.dns_port,
                        timeout=5)
    assert _answers(msg, "A") == ["127.0.0.21"]


def test_dns_port_in_use_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "nomadmesh", "agent", "--dev", "--data-dir", str(tmp_path / "d"),
             "--nomad-port", str(free_port()), "--consul-port", str(free_port()), "--dns-port", str(port)],
            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"DNS interface: port 127.0.0.1:{port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_udp_answers_at_most_three_records_unless_edns_and_tcp_answers_all(dns_agent: RunningAgent) -> None:
    for i in range(5):
        requests.put(f"{dns_agent.consul_addr}/v1/agent/service/register",
                     json={"ID": f"many-{i}", "Name": "many", "Address": f"127.0.1.{i + 1}", "Port": 9100 + i},
                     timeout=10).raise_for_status()
    everyone = [f"127.0.1.{i + 1}" for i in range(5)]
    seen: set[str] = set()
    for _ in range(20):  # shuffled as Consul does: repeated queries name every instance
        udp = dns.query.udp(dns.message.make_query("many.service.consul", "A"), "127.0.0.1",
                            port=dns_agent.dns_port, timeout=5)
        answered = _answers(udp, "A")
        assert len(answered) == 3 and set(answered) <= set(everyone)
        seen.update(answered)
    assert seen == set(everyone)
    srv = dns.query.udp(dns.message.make_query("many.service.consul", "SRV"), "127.0.0.1",
                        port=dns_agent.dns_port, timeout=5)
    targets = {rd.target for rrset in srv.answer for rd in rrset}
    assert len(targets) == 3 and {rrset.name for rrset in srv.additional} == targets
    edns = dns.query.udp(dns.message.make_query("many.service.consul", "A", use_edns=0, payload=4096), "127.0.0.1",
                         port=dns_agent.dns_port, timeout=5)
    assert _answers(edns, "A") == everyone
    tcp = dns.query.tcp(dns.message.make_query("many.service.consul", "A"), "127.0.0.1",
                        port=dns_agent.dns_port, timeout=5)
    assert _answers(tcp, "A") == everyone

"""deploy/verify.py against a real agent with default policy deny: intentions and Connect health."""
from __future__ import annotations

import pytest
import requests

from nomadmesh.deploy import intentions as di
from nomadmesh.deploy.target import consul_client, target_from_env
from nomadmesh.deploy.verify import verify_edges


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    from support.agents import started_agents
    factory = started_agents(tmp_path_factory)
    try:
        yield next(factory)("--default-policy", "deny")
    finally:
        factory.close()


def register_proxy(addr: str, service: str, status: str) -> None:
    """A sidecar proxy for `service` in the catalog, with a TTL check in `status`."""
    body = {"Name": f"{service}-sidecar-proxy", "ID": f"{service}-sidecar-proxy", "Kind": "connect-proxy",
            "Port": 21000, "Proxy": {"DestinationServiceName": service},
            "Check": {"CheckID": f"{service}-ttl", "Name": "ttl", "TTL": "60s", "Status": status}}
    requests.put(f"{addr}/v1/agent/service/register", json=body, timeout=5).raise_for_status()


def test_default_deny_then_allow_then_unhealthy(strict) -> None:
    consul = consul_client(target_from_env({}, consul_addr=strict.consul_addr))
    register_proxy(strict.consul_addr, "tax", "passing")
    register_proxy(strict.consul_addr, "invoice", "critical")
    edges = [("invoice", "tax"), ("order", "invoice")]

    denied = verify_edges(consul, edges, health_wait_s=0)
    assert [e.ok for e in denied] == [False, False]
    assert denied[0].rule == "default policy (deny)"  # learnt from the agent's own /check, not assumed
    assert denied[0].healthy == 1

    di.set_intention(consul, "invoice", "tax", "allow")
    di.set_intention(consul, "order", "invoice", "allow")
    tax, invoice = verify_edges(consul, edges, health_wait_s=0)
    assert tax.ok and tax.message == "allowed by invoice => tax (allow); tax has 1 healthy Connect instance"
    assert not invoice.ok and invoice.healthy == 0  # its proxy's check is critical
    assert "invoice has no healthy Connect instance" in invoice.message

    requests.put(f"{strict.consul_addr}/v1/agent/check/pass/invoice-ttl", timeout=5).raise_for_status()
    assert all(e.ok for e in verify_edges(consul, edges, health_wait_s=0))

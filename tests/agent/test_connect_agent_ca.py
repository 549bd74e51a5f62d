"""The agent's Connect CA over its Consul API, read with py-consul: roots, leaf certificates with
SPIFFE IDs of the agent's trust domain, blocking leaf queries, and the root persisted (key 0600)."""
from __future__ import annotations

import stat
import time
from typing import Any

import consul
import pytest
import requests
from cryptography import x509

from nomadmesh.agent.connect import identity


@pytest.fixture(scope="module")
def ca_agent(module_agent: Any) -> tuple[Any, consul.Consul]:
    return module_agent, consul.Consul(host="127.0.0.1", port=module_agent.consul_port)


def test_roots_same_on_both_endpoints_and_trust_domain_of_cluster(ca_agent: tuple[Any, consul.Consul]) -> None:
    agent, c = ca_agent
    roots = c.agent.connect.ca.roots()
    assert roots == c.connect.ca.roots()
    (root,) = roots["Roots"]
    assert root["ID"] == roots["ActiveRootID"] and root["Active"] is True
    assert roots["TrustDomain"].endswith(".consul")
    cert = x509.load_pem_x509_certificate(root["RootCert"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{roots['TrustDomain']}"]
    key = agent.data_dir / "connect" / "root.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_leaf_has_spiffe_id_and_is_signed_by_root(ca_agent: tuple[Any, consul.Consul]) -> None:
    _, c = ca_agent
    roots = c.agent.connect.ca.roots()
    leaf = c.agent.connect.ca.leaf("billing")
    uri = identity.service_uri(roots["TrustDomain"], "dc1", "billing")
    assert leaf["Service"] == "billing" and leaf["ServiceURI"] == uri
    cert = x509.load_pem_x509_certificate(leaf["CertPEM"].encode())
    root = x509.load_pem_x509_certificate(roots["Roots"][0]["RootCert"].encode())
    cert.verify_directly_issued_by(root)  # raises if not
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    ttl = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(ttl.total_seconds() - (72 * 3600 + 60)) < 5  # 72 h from now - 1 min
    assert "PRIVATE KEY" in leaf["PrivateKeyPEM"]
    # The same leaf is served until it is due for rotation.
    assert c.agent.connect.ca.leaf("billing")["SerialNumber"] == leaf["SerialNumber"]


def test_blocking_leaf_query_waits_for_a_change(ca_agent: tuple[Any, consul.Consul]) -> None:
    agent, _ = ca_agent
    url = f"{agent.consul_addr}/v1/agent/connect/ca/leaf/shipping"
    first = requests.get(url, timeout=5)
    index = int(first.headers["X-Consul-Index"])
    t = time.monotonic()
    again = requests.get(url, params={"index": index, "wait": "1s"}, timeout=10)
    waited = time.monotonic() - t
    assert again.status_code == 200 and 0.9 <= waited < 3, waited
    assert again.json()["SerialNumber"] == first.json()["SerialNumber"]
    assert int(again.headers["X-Consul-Index"]) == index


def test_root_survives_agent_restart(agent_factory: Any) -> None:
    agent = agent_factory()
    before = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", timeout=5).json()
    agent.restart(kill=False)
    after = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", timeout=5).json()
    assert after["ActiveRootID"] == before["ActiveRootID"]
    assert after["TrustDomain"] == before["TrustDomain"]

"""The hot leaf route: `GET /v1/agent/connect/ca/leaf/<service>` answered by FastLeaf (no Quart) and
signed by the agent's signer process, over HTTP against one agent. It must answer exactly as the
Quart view does (a query string sends the same request there), and leave every other form of the
request to Quart."""
from __future__ import annotations

import re
from typing import Any

import requests
from cryptography import x509

LEAF = "/v1/agent/connect/ca/leaf"
SAME_HEADERS = ("Content-Type", "X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact")


def _prometheus_count(agent: Any, path: str) -> float:
    text = requests.get(f"{agent.consul_addr}/v1/agent/metrics", params={"format": "prometheus"}, timeout=5).text
    pattern = r'^consul_api_http_count\{[^}]*path="' + re.escape(path) + r'"[^}]*\} (\S+)$'
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def test_fast_answer_equals_quarts_answer(module_agent: Any) -> None:
    base = f"{module_agent.consul_addr}{LEAF}/fastpath-web"
    fast = requests.get(base, timeout=5)  # the plain form: FastLeaf, a fresh leaf from the signer
    via_quart = requests.get(base, params={"index": "0"}, timeout=5)  # a query: the Quart view
    assert fast.status_code == via_quart.status_code == 200
    assert fast.json() == via_quart.json()  # the same held leaf, the same JSON
    assert {h: fast.headers.get(h) for h in SAME_HEADERS} == {h: via_quart.headers.get(h) for h in SAME_HEADERS}
    assert fast.headers["Content-Type"] == "application/json"
    roots = requests.get(f"{module_agent.consul_addr}/v1/agent/connect/ca/roots", timeout=5).json()
    root = x509.load_pem_x509_certificate(roots["Roots"][0]["RootCert"].encode())
    x509.load_pem_x509_certificate(fast.json()["CertPEM"].encode()).verify_directly_issued_by(root)


def test_fresh_leaves_are_distinct_and_counted_in_the_routes_metric(module_agent: Any) -> None:
    before = _prometheus_count(module_agent, "v1_agent_connect_ca_leaf_")
    leaves = [requests.get(f"{module_agent.consul_addr}{LEAF}/fastpath-{i}", timeout=5).json() for i in range(5)]
    assert len({leaf["SerialNumber"] for leaf in leaves}) == 5
    assert len({leaf["PrivateKeyPEM"] for leaf in leaves}) == 5  # a fresh key each
    assert [leaf["Service"] for leaf in leaves] == [f"fastpath-{i}" for i in range(5)]
    assert _prometheus_count(module_agent, "v1_agent_connect_ca_leaf_") == before + 5


def test_a_refused_host_and_odd_paths_get_quarts_answers(module_agent: Any) -> None:
    base = f"{module_agent.consul_addr}{LEAF}"
    refused = requests.get(f"{base}/fastpath-web", headers={"Host": "evil.example:80"}, timeout=5)
    assert refused.status_code == 403 and "DNS rebinding" in refused.text
    assert requests.get(f"{base}/", timeout=5).status_code == 404
    trailing = requests.get(f"{base}/fastpath-web/", timeout=5)  # Quart's strict_slashes off: the same leaf
    assert trailing.json()["SerialNumber"] == requests.get(f"{base}/fastpath-web", timeout=5).json()["SerialNumber"]
    bad_wait = requests.get(f"{base}/fastpath-web", params={"wait": "soon"}, timeout=5)
    assert bad_wait.status_code == 400 and "Invalid wait time" in bad_wait.text

"""GET/POST /v1/discovery-chain/:service on the dev agent over real HTTP (py-consul's client):
the compiled chain of the stored entries, Consul's overrides, its errors, and a blocking read
that returns when an entry changes."""
from __future__ import annotations

import threading

import consul
import pytest
import requests

from support.agents import RunningAgent


@pytest.fixture(scope="module")
def c(module_agent: RunningAgent) -> consul.Consul:
    client = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    client.config.set("service-defaults", "dc-api", {"Kind": "service-defaults", "Name": "dc-api", "Protocol": "http"})
    client.config.set("service-resolver", "dc-api", {"Kind": "service-resolver", "Name": "dc-api", "Subsets": {
        "v1": {"Filter": "Service.Meta.version == 1"}, "v2": {"Filter": "Service.Meta.version == 2"}}})
    client.config.set("service-splitter", "dc-api", {"Kind": "service-splitter", "Name": "dc-api", "Splits": [
        {"Weight": 75, "ServiceSubset": "v1"}, {"Weight": 25, "ServiceSubset": "v2"}]})
    return client


def test_the_chain_of_stored_entries_with_the_agents_trust_domain(c: consul.Consul) -> None:
    chain = c.discovery_chain.get("dc-api")["Chain"]
    assert chain["ServiceName"] == "dc-api" and chain["Protocol"] == "http"
    assert chain["StartNode"] == "splitter:dc-api.default.default"
    assert [s["Weight"] for s in chain["Nodes"][chain["StartNode"]]["Splits"]] == [75, 25]
    trust_domain = requests.get(f"{c.http.base_uri}/v1/connect/ca/roots", timeout=5).json()["TrustDomain"]
    v2 = chain["Targets"]["v2.dc-api.default.default.dc1"]
    assert v2["SNI"] == v2["Name"] == f"v2.dc-api.default.dc1.internal.{trust_domain}"
    plain = c.discovery_chain.get("dc-nothing")["Chain"]
    assert plain["Default"] is True and plain["StartNode"] == "resolver:dc-nothing.default.default.dc1"


def test_post_overrides_as_consul_applies_them(c: consul.Consul, module_agent: RunningAgent) -> None:
    chain = c.discovery_chain.get("dc-api", override_protocol="tcp", override_connect_timeout="9s")["Chain"]
    assert chain["Protocol"] == "tcp" and chain["CustomizationHash"]
    assert chain["StartNode"] == "resolver:dc-api.default.default.dc1"  # no splitter at L4
    assert chain["Targets"]["dc-api.default.default.dc1"]["ConnectTimeout"] == "9s"
    url = f"{module_agent.consul_addr}/v1/discovery-chain/dc-api"
    r = requests.post(url, json={"OverrideMeshGateway": {"Mode": "sideways"}}, timeout=5)
    assert (r.status_code, r.text.strip()) == (400, "Invalid OverrideMeshGateway.Mode parameter")
    r = requests.post(url, json={"override_connect_timeout": "soon"}, timeout=5)
    assert r.status_code == 400 and r.text.startswith("Request decoding failed: time: invalid duration")


def test_a_graph_consul_refuses_is_a_500_with_its_text(module_agent: RunningAgent) -> None:
    """A redirect loop: refused when written if the store checks the graph, else when compiled."""
    answers = []
    for name, to in (("dc-a", "dc-b"), ("dc-b", "dc-a")):
        r = requests.put(f"{module_agent.consul_addr}/v1/config", timeout=5,
                         json={"Kind": "service-resolver", "Name": name, "Redirect": {"Service": to}})
        answers.append((r.status_code, r.text.strip()))
    if answers[-1][0] == 200:
        r = requests.get(f"{module_agent.consul_addr}/v1/discovery-chain/dc-a", timeout=5)
        answers.append((r.status_code, r.text.strip()))
    status, text = answers[-1]
    assert status == 500 and text.startswith("detected circular resolver redirect: ["), answers
    assert "dc-a.default.default.dc1 -> dc-b.default.default.dc1 -> dc-a.default.default.dc1" in text \
        or "dc-b.default.default.dc1 -> dc-a.default.default.dc1 -> dc-b.default.default.dc1" in text


def test_a_blocking_read_returns_when_an_entry_changes(c: consul.Consul, module_agent: RunningAgent) -> None:
    url = f"{module_agent.consul_addr}/v1/discovery-chain/dc-api"
    index = requests.get(url, timeout=5).headers["X-Consul-Index"]
    got: list[requests.Response] = []
    reader = threading.Thread(target=lambda: got.append(requests.get(url, params={"index": index, "wait": "10s"},
                                                                     timeout=15)))
    reader.start()
    c.config.set("service-splitter", "dc-api", {"Kind": "service-splitter", "Name": "dc-api", "Splits": [
        {"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "ServiceSubset": "v2"}]})
    reader.join(15)
    (resp,) = got
    assert int(resp.headers["X-Consul-Index"]) > int(index)
    assert [s["Weight"] for s in resp.json()["Chain"]["Nodes"]["splitter:dc-api.default.default"]["Splits"]] == [50, 50]

"""Issue 15 point 2: service-resolver / service-splitter / service-router entries written over
Consul's API change what real Envoy does, live (tests/support/l7_mesh.py: two versions of `api`
with different Meta and tags, an `admin` service, a `web` caller; four real Envoys on one agent).

* resolver subsets by Meta + splitter 50/50: both versions answer; 100/0: only v1; the change
  reaches the running Envoy without a restart (same process);
* a subset's membership follows the catalog: api-v2 re-registered with version=1 joins subset v1;
* router: a path prefix goes to another service, another to subset v2 with a prefix rewrite;
* a ring-hash balancer keyed on a header keeps each user on one instance;
* GET /v1/discovery-chain/api shows the compiled chain.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from support.agents import RunningAgent
from support.l7_mesh import CALLER, L7Mesh
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]

SAMPLE = 40  # requests per look at the split: at 50/50 the chance one version never answers is 2^-39


@pytest.fixture(scope="module")
def mesh(module_agent: RunningAgent, tmp_path_factory: pytest.TempPathFactory) -> Iterator[L7Mesh]:
    m = L7Mesh(module_agent.consul_addr, tmp_path_factory.mktemp("l7"))
    try:
        m.start()
        wait_until(lambda: m.served_by() in ("api-v1", "api-v2"), 30, step=0.05, what="web -> api through Envoy")
        yield m
    finally:
        m.stop()
    assert m.leftovers() == []


def answered(mesh: L7Mesh, path: str = "/") -> set[str]:
    return {mesh.served_by(path) for _ in range(SAMPLE)}


def test_split_between_subsets_is_enforced_and_changed_live(mesh: L7Mesh) -> None:
    web_envoy = mesh.envoys[CALLER].pid
    mesh.split(50, 50)
    wait_until(lambda: answered(mesh) == {"api-v1", "api-v2"}, 10, step=0.05, what="both subsets answer")

    mesh.split(100, 0)
    wait_until(lambda: answered(mesh) == {"api-v1"}, 10, step=0.05, what="only v1 answers")
    assert mesh.envoys[CALLER].poll() is None and mesh.envoys[CALLER].pid == web_envoy  # no restart

    # Each subset is its own cluster, named like Consul's (the stat names a release controller reads).
    stats = mesh.envoy_stats(CALLER, r"^cluster\.v[12]\.api\..*upstream_rq_total$")
    v1 = [k for k in stats if k.startswith("cluster.v1.api.default.")]
    assert v1 and stats[v1[0]] > 0, stats

    # Membership follows the catalog: v2's instance re-registered with version=1 joins subset v1.
    mesh.register("api-v2", "api", mesh.backends["api-v2"].server_address[1], {"version": "1"}, ["v1"], [])
    try:
        wait_until(lambda: "api-v2" in answered(mesh), 10, step=0.05, what="api-v2 serves subset v1")
    finally:
        mesh.register("api-v2", "api", mesh.backends["api-v2"].server_address[1], {"version": "2"},
                      ["v2", "canary"], [])
    wait_until(lambda: answered(mesh) == {"api-v1"}, 10, step=0.05, what="api-v2 left subset v1")


def test_router_sends_paths_to_another_service_and_to_a_subset(mesh: L7Mesh) -> None:
    mesh.split(100, 0)
    mesh.entry("service-router", "api", Routes=[
        {"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "admin"}},
        {"Match": {"HTTP": {"PathPrefix": "/canary/"}},
         "Destination": {"ServiceSubset": "v2", "PrefixRewrite": "/"}},
        # Every match kind at once (RE2 path, header, query, method) with retries and a timeout:
        # Envoy must accept the route configuration, and only a request matching all goes to v2.
        {"Match": {"HTTP": {"PathRegex": "/re/[0-9]+", "Methods": ["GET"],
                            "QueryParam": [{"Name": "beta", "Exact": "1"}],
                            "Header": [{"Name": "x-debug", "Present": True, "Invert": True}]}},
         "Destination": {"ServiceSubset": "v2", "RequestTimeout": "5s", "NumRetries": 2,
                         "RetryOnConnectFailure": True, "RetryOnStatusCodes": [503]}},
    ])
    try:
        wait_until(lambda: mesh.served_by("/admin/x") == "admin", 10, step=0.05, what="/admin routed to admin")
        # Subset v2, prefix rewritten (api-v2 may still be passing its checks after the test before).
        wait_until(lambda: mesh.call("/canary/hello") == (200, "backend api-v2 /hello\n"), 10, step=0.05,
                   what="/canary/ routed to subset v2")
        assert answered(mesh, "/other") == {"api-v1"}  # the catch-all still follows the split
        assert mesh.served_by("/re/42?beta=1") == "api-v2"
        assert mesh.served_by("/re/42?beta=2") == mesh.served_by("/re/x?beta=1") == "api-v1"
    finally:
        mesh.delete_entry("service-router", "api")
    wait_until(lambda: mesh.served_by("/admin/x") == "api-v1", 10, step=0.05, what="router removed")


def test_ring_hash_on_a_header_keeps_a_user_on_one_instance(mesh: L7Mesh) -> None:
    mesh.delete_entry("service-splitter", "api")  # both instances behind one cluster
    mesh.resolver(LoadBalancer={"Policy": "ring_hash", "HashPolicies": [{"Field": "header", "FieldValue": "x-user"}]})
    try:
        wait_until(lambda: answered(mesh) == {"api-v1", "api-v2"}, 10, step=0.05, what="both instances, no split")

        def sticky() -> bool:
            return all(len({mesh.served_by(headers={"x-user": u}) for _ in range(5)}) == 1 for u in "abcd")
        wait_until(sticky, 10, step=0.05, what="the balancer hashes x-user")
        # 16 users all on one of two equal instances: 2^-15
        assert {mesh.served_by(headers={"x-user": f"user{i}"}) for i in range(16)} == {"api-v1", "api-v2"}
    finally:
        mesh.resolver()
        mesh.split(100, 0)


def test_discovery_chain_endpoint_shows_the_compiled_chain(mesh: L7Mesh) -> None:
    mesh.split(90, 10)
    chain = requests.get(f"{mesh.consul_addr}/v1/discovery-chain/api", timeout=5).json()["Chain"]
    assert chain["Protocol"] == "http" and chain["StartNode"] == "splitter:api.default.default"
    legs = chain["Nodes"]["splitter:api.default.default"]["Splits"]
    assert [(s["Weight"], s["NextNode"]) for s in legs] == [
        (90, "resolver:v1.api.default.default.dc1"), (10, "resolver:v2.api.default.default.dc1")]
    assert chain["Targets"]["v2.api.default.default.dc1"]["Subset"] == {"Filter": 'Service.Meta.version == "2"'}

"""SnapshotCache: consistency checks, per-type content versions, latest-wins watchers."""
from __future__ import annotations

from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from nomadmesh.agent.connect.cache import InconsistentSnapshot, SnapshotCache, check_consistent
from nomadmesh.agent.connect.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, build_resources
from nomadmesh.agent.connect.snapshot import ExposePath
from nomadmesh.mesh.intentions import Intention
from support.connect_support import snapshot, upstream


def _snap():
    return snapshot("order", upstreams=(upstream("invoice", 6001, (("10.0.0.2", 21001),)),))


def test_built_resources_are_consistent() -> None:
    assert check_consistent(build_resources(_snap())) == []


def test_missing_cluster_secret_and_endpoints_are_reported() -> None:
    built = build_resources(_snap())
    built[CLUSTER] = [c for c in built[CLUSTER] if c.name != "local_app"]
    built[SECRET] = [s for s in built[SECRET] if s.name != "ROOTCA"]
    built[ENDPOINT] = []
    problems = check_consistent(built)
    assert "listener 'public_listener:0.0.0.0:21000' routes to missing cluster 'local_app'" in problems
    assert "listener 'public_listener:0.0.0.0:21000' uses missing secret 'ROOTCA'" in problems
    sni = next(c.name for c in built[CLUSTER] if c.type == cluster_pb2.Cluster.EDS)
    assert f"EDS cluster {sni!r} has no endpoints resource" in problems
    assert f"cluster {sni!r} uses missing secret 'ROOTCA'" in problems


def test_duplicate_names_are_refused_and_nothing_is_stored() -> None:
    cache = SnapshotCache()
    # "/health" and "/he/alth" both become listener exposed_path_health
    bad = replace(_snap(), exposed_paths=(ExposePath("/health", 8080, 21500), ExposePath("/he/alth", 8080, 21501)))
    with pytest.raises(InconsistentSnapshot, match="Listener 'exposed_path_health' is defined twice"):
        cache.set("order-sidecar-proxy", bad)
    assert cache.get("order-sidecar-proxy") is None


def test_an_intention_change_changes_only_the_listener_version() -> None:
    cache = SnapshotCache()
    snap = _snap()
    first = cache.set("n", snap)
    second = cache.set("n", replace(snap, intentions=(Intention("web", "order", "deny"),)))
    changed = {t for t in (CLUSTER, ENDPOINT, SECRET, LISTENER) if first.versions[t] != second.versions[t]}
    assert changed == {LISTENER}
    third = cache.set("n", replace(snap, upstreams=(upstream("invoice", 6001, (("10.0.0.9", 21001),)),)))
    assert {t for t in (CLUSTER, ENDPOINT, SECRET, LISTENER) if first.versions[t] != third.versions[t]} == {ENDPOINT}


def test_an_intention_change_rebuilds_only_the_listeners_and_serves_what_a_full_build_would() -> None:
    cache = SnapshotCache()
    snap = _snap()
    first = cache.set("n", snap)
    denied = replace(snap, intentions=(Intention("*", "order", "deny"),), default_allow=False)
    second = cache.set("n", denied)
    full = SnapshotCache().set("n", denied)  # built from nothing
    assert {t: dict(v) for t, v in second.by_type.items()} == {t: dict(v) for t, v in full.by_type.items()}
    assert second.versions == full.versions
    # Kept, not rebuilt: the same packed clusters, endpoints, secrets and routes as before.
    for type_url in (CLUSTER, ENDPOINT, SECRET, ROUTE):
        assert second.by_type[type_url] is first.by_type[type_url]
    assert second.by_type[LISTENER] is not first.by_type[LISTENER]
    # Anything else changing (a new leaf) builds every type again.
    third = cache.set("n", replace(denied, leaf_cert_pem=snap.leaf_cert_pem + "\n"))
    assert third.by_type[SECRET] is not second.by_type[SECRET]
    assert third.by_type[CLUSTER] is not second.by_type[CLUSTER]


def test_watchers_hear_changes_but_not_identical_sets() -> None:
    cache = SnapshotCache()
    calls: list[str] = []
    cancel = cache.watch("n", lambda: calls.append("n"))
    cache.watch("other", lambda: calls.append("other"))
    snap = _snap()
    cache.set("n", snap)
    cache.set("n", replace(snap))  # same content: no wake-up
    cache.set("n", replace(snap, default_allow=False))
    assert calls == ["n", "n"]
    cache.delete("n")
    assert calls == ["n", "n", "n"] and cache.get("n") is None
    cancel()
    cache.set("n", snap)
    assert calls == ["n", "n", "n"]


def test_select_answers_exactly_the_names_asked() -> None:
    res = SnapshotCache().set("n", _snap())
    assert len(res.select(SECRET, ["ROOTCA"])) == 1
    assert len(res.select(SECRET, None)) == 2
    assert res.select(SECRET, ["nope"]) == []

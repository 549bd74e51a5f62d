"""nomadmesh.mesh.traffic: counters into rates and shares, histogram buckets into percentiles (issue 16)."""
from __future__ import annotations

import json
import re

import pytest

from nomadmesh.mesh import traffic as t

P = "http.public_listener."


def sample(at: float, counters: dict[str, int], histograms: dict[str, t.Buckets] | None = None) -> t.Sample:
    return t.Sample(at, counters, histograms or {})


def test_quantile_interpolates_within_the_bucket_as_prometheus_does() -> None:
    buckets = ((1.0, 0), (5.0, 50), (10.0, 100))  # 50 in (1, 5], 50 in (5, 10]
    assert t.quantile(0.5, buckets) == pytest.approx(5.0)
    assert t.quantile(0.25, buckets) == pytest.approx(3.0)
    assert t.quantile(0.99, buckets) == pytest.approx(9.9)
    assert t.quantile(0.5, ((1.0, 0), (5.0, 0))) is None
    assert t.quantile(0.5, ()) is None


def test_bucket_and_counter_deltas_survive_an_envoy_restart() -> None:
    a = sample(0, {"c": 10}, {"h": ((1.0, 5), (2.0, 8))})
    b = sample(2, {"c": 14}, {"h": ((1.0, 6), (2.0, 12))})
    assert t.delta(a, b, "c") == 4 and t.bucket_delta(a, b, "h") == ((1.0, 1), (2.0, 4))
    restarted = sample(4, {"c": 3}, {"h": ((1.0, 1), (2.0, 1))})
    assert t.delta(b, restarted, "c") == 3 and t.bucket_delta(b, restarted, "h") == ((1.0, 1), (2.0, 1))


def test_parse_envoy_json_reads_counters_and_cumulative_buckets() -> None:
    body = json.dumps({"stats": [
        {"name": f"{P}downstream_rq_2xx", "value": 7},
        {"name": "version_text", "value": "x"},
        {"histograms": [{"name": f"{P}downstream_rq_time", "buckets": [
            {"upper_bound": 0.5, "interval": 0, "cumulative": 1},
            {"upper_bound": 1, "interval": 0, "cumulative": 3}]}]},
    ]})
    counters, histograms = t.parse_envoy_json(body)
    assert counters == {f"{P}downstream_rq_2xx": 7}
    assert histograms == {f"{P}downstream_rq_time": ((0.5, 1), (1.0, 3))}


def test_http_destination_with_one_caller_gives_the_edge_its_statuses_denials_and_latency() -> None:
    api0 = sample(100, {f"{P}downstream_rq_total": 0, f"{P}downstream_rq_2xx": 0, f"{P}downstream_rq_4xx": 0,
                        f"{P}downstream_rq_5xx": 0, f"{P}rbac.denied": 0},
                  {f"{P}downstream_rq_time": ((1.0, 0), (5.0, 0), (10.0, 0))})
    # 20 requests in 10 s: 14 answered 2xx, 4 refused by RBAC (403), 2 failed 5xx.
    api1 = sample(110, {f"{P}downstream_rq_total": 20, f"{P}downstream_rq_2xx": 14, f"{P}downstream_rq_4xx": 4,
                        f"{P}downstream_rq_5xx": 2, f"{P}rbac.denied": 4},
                  {f"{P}downstream_rq_time": ((1.0, 10), (5.0, 18), (10.0, 20))})
    web0 = sample(100, {"tcp.upstream.api.default.default.dc1.downstream_cx_total": 5})
    web1 = sample(110, {"tcp.upstream.api.default.default.dc1.downstream_cx_total": 25,
                        "cluster.api.default.dc1.internal.x.consul.upstream_cx_connect_fail": 0})
    figs = t.figures([t.SidecarWindow("api", (), api0, api1), t.SidecarWindow("web", ("api",), web0, web1)], "test")
    api = figs.service("api")
    assert api is not None and api.protocol == "http" and api.rps == 2.0
    assert (api.share_2xx, api.share_4xx, api.share_5xx, api.error_share) == (0.7, 0.2, 0.1, 0.3)
    assert api.rbac_denied_per_s == 0.4 and api.p50_ms == pytest.approx(1.0)
    assert api.p99_ms == pytest.approx(9.5)  # rank 19.8 in (5, 10] holding 18..20: 5 + 5 · 1.8/2
    edge = figs.edge("web", "api")
    assert edge is not None and edge.measured_at == "destination" and edge.unit == "requests"
    assert (edge.rps, edge.error_share, edge.rbac_denied_per_s, edge.p99_ms) == (2.0, 0.3, 0.4, api.p99_ms)
    web = figs.service("web")
    assert web is not None and web.rps == 0.0 and web.error_share is None  # nothing called web


def test_a_destination_with_two_callers_keeps_each_edge_to_what_its_source_saw() -> None:
    def caller(name: str, before: int, after: int) -> t.SidecarWindow:
        key = "tcp.upstream.db.default.default.dc1.downstream_cx_total"
        return t.SidecarWindow(name, ("db",), sample(0, {key: before}), sample(4, {key: after}))

    db = t.SidecarWindow("db", (), sample(0, {"connect_authz.rbac.allowed": 0, "connect_authz.rbac.denied": 0}),
                         sample(4, {"connect_authz.rbac.allowed": 8, "connect_authz.rbac.denied": 4}))
    figs = t.figures([caller("a", 0, 8), caller("b", 0, 4), db], "test")
    a, b = figs.edge("a", "db"), figs.edge("b", "db")
    assert a is not None and b is not None
    assert (a.rps, a.unit, a.measured_at, a.error_share) == (2.0, "connections", "source", None)
    assert b.rps == 1.0 and b.rbac_denied_per_s is None
    svc = figs.service("db")
    assert svc is not None and svc.protocol == "tcp" and svc.rps == 3.0
    assert svc.error_share == pytest.approx(1 / 3, 1e-3)
    assert svc.rbac_denied_per_s == 1.0 and svc.p99_ms is None


def test_an_http_upstream_listener_is_measured_at_the_source() -> None:
    up = "http.upstream.api.default.default.dc1."
    first = sample(0, {f"{up}downstream_rq_total": 0, f"{up}downstream_rq_2xx": 0},
                   {f"{up}downstream_rq_time": ((2.0, 0), (4.0, 0))})
    last = sample(5, {f"{up}downstream_rq_total": 10, f"{up}downstream_rq_2xx": 9, f"{up}downstream_rq_5xx": 1},
                  {f"{up}downstream_rq_time": ((2.0, 5), (4.0, 10))})
    edge = t.figures([t.SidecarWindow("web", ("api",), first, last)], "test").edge("web", "api")
    assert edge is not None and (edge.rps, edge.unit, edge.share_5xx, edge.measured_at) == (2.0, "requests", 0.1,
                                                                                            "source")
    assert edge.p50_ms == pytest.approx(2.0)


def test_window_of_takes_the_oldest_sample_inside_the_window_and_the_newest() -> None:
    samples = [sample(at, {}) for at in (0, 30, 50, 70, 90)]
    first, last = t.window_of(samples, now=100, window_s=60) or (None, None)
    assert first is samples[2] and last is samples[4]
    assert t.window_of(samples[:1], now=1) is None


def test_figures_round_trip_through_json() -> None:
    a = t.SidecarWindow("web", ("api",), sample(0, {}), sample(2, {}))
    figs = t.figures([a], "src")
    assert t.Figures.from_json(json.loads(json.dumps(figs.to_json()))) == figs


def test_tls_failures_the_caller_meets_on_its_upstream_cluster_are_that_edges() -> None:
    cluster = "cluster.db.default.dc1.internal.11111111-2222.consul."
    key = "tcp.upstream.db.default.default.dc1.downstream_cx_total"

    def caller(name: str, fails: int) -> t.SidecarWindow:
        return t.SidecarWindow(name, ("db",), sample(0, {key: 0, f"{cluster}ssl.connection_error": 0}),
                               sample(4, {key: 4, f"{cluster}ssl.connection_error": fails,
                                          f"{cluster}ssl.fail_verify_san": fails,
                                          f"{cluster}ssl.handshake": 4}))  # handshakes are not failures

    old_envoy = t.SidecarWindow("c", ("db",), sample(0, {key: 0}), sample(4, {key: 4}))  # no TLS counters read
    figs = t.figures([caller("a", 2), caller("b", 0), old_envoy], "test")
    assert [figs.edge(s, "db").tls_failures_per_s for s in "abc"] == [1.0, 0.0, None]  # type: ignore[union-attr]
    asked = [n for n in ("ssl.fail_verify_san", "upstream_cx_connect_fail", "ssl.handshake")
             if re.search(t.STATS_FILTER, cluster + n)]
    assert asked == ["ssl.fail_verify_san", "upstream_cx_connect_fail"]  # what the sampler asks Envoy for

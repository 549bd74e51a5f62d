"""Issue 6 point 2, the pure part: the parse of Envoy admin stats captured from the sample mesh's tax
and invoice sidecars into a sidecar's figures (the endpoint: tests/agent/test_sidecar_stats_endpoint.py;
the live figures on the sample mesh: tests/e2e/test_sidecar_stats.py)."""
from __future__ import annotations

import json
import re

from nomadmesh.agent.connect import admin_stats

# Captured from the sample mesh's tax sidecar (admin `/stats`, the lines STATS_FILTER keeps plus
# a few it must not) after three order calls and two calls refused by a deny invoice -> tax.
TAX_TEXT = """\
cluster.local_agent.upstream_cx_active: 1
cluster.local_agent.upstream_cx_total: 1
cluster.local_app.upstream_cx_active: 1
cluster.local_app.upstream_cx_total: 11
cluster.local_app.upstream_rq_total: 8
cluster_manager.cds.version_text: "42342c59bea6b3a9"
connect_authz.rbac.allowed: 4
connect_authz.rbac.denied: 2
connect_authz.rbac.shadow_denied: 0
listener.0.0.0.0_23844.downstream_cx_active: 0
listener.0.0.0.0_23844.downstream_cx_total: 2
listener.0.0.0.0_28697.downstream_cx_active: 0
listener.0.0.0.0_28697.downstream_cx_total: 10
listener.0.0.0.0_28697.ssl.connection_error: 0
listener.0.0.0.0_28697.ssl.fail_verify_error: 0
listener.0.0.0.0_28697.ssl.fail_verify_no_cert: 0
listener.0.0.0.0_28697.ssl.handshake: 6
listener.0.0.0.0_28697.ssl.session_reused: 4
listener.admin.downstream_cx_active: 1
server.uptime: 7
tcp.public_listener.downstream_cx_total: 10
cluster.local_app.upstream_cx_length_ms: P0(nan,1) P25(nan,1.025) P50(nan,1.05) P100(nan,2.1)
"""


INVOICE_JSON = json.dumps({"stats": [
    {"name": "cluster.local_app.upstream_cx_total", "value": 11},
    {"name": "cluster.tax.default.dc1.internal.074ffb63-487e-460c-8cf7-80b11f50267e.consul.upstream_cx_active",
     "value": 0},
    {"name": "cluster.tax.default.dc1.internal.074ffb63-487e-460c-8cf7-80b11f50267e.consul.upstream_cx_total",
     "value": 6},
    {"name": "cluster.tax.default.dc1.internal.074ffb63-487e-460c-8cf7-80b11f50267e.consul.upstream_rq_total",
     "value": 6},
    {"name": "connect_authz.rbac.allowed", "value": 6},
    {"name": "connect_authz.rbac.denied", "value": 0},
    {"name": "listener.0.0.0.0_27945.downstream_cx_active", "value": 1},
    {"name": "listener.0.0.0.0_27945.downstream_cx_total", "value": 10},
    {"name": "listener.0.0.0.0_27945.ssl.handshake", "value": 6},
    {"name": "listener.0.0.0.0_27945.ssl.fail_verify_no_cert", "value": 1},
    {"name": "sds.tax.version_text", "value": "70c8c6992cd71549"},
    {"name": "server.uptime", "value": 12},
    {"histograms": {"supported_quantiles": [0, 50, 100], "computed_quantiles": []}},
]})


def test_parse_text_and_json_keep_numbers_only() -> None:
    text = admin_stats.parse_stats(TAX_TEXT)
    assert text["listener.0.0.0.0_28697.ssl.handshake"] == 6 and text["server.uptime"] == 7
    assert "cluster_manager.cds.version_text" not in text  # a text value
    assert "cluster.local_app.upstream_cx_length_ms" not in text  # a histogram
    js = admin_stats.parse_stats(INVOICE_JSON)
    assert js["connect_authz.rbac.allowed"] == 6 and "sds.tax.version_text" not in js and len(js) == 11


def test_figures_of_a_tcp_public_listener() -> None:
    figs = admin_stats.figures(admin_stats.parse_stats(TAX_TEXT), 28697, upstreams=())
    assert figs.to_json() == {
        "protocol": "tcp", "public_listener": "0.0.0.0:28697", "active_connections": 0, "connections_total": 10,
        "requests_total": 6,  # TCP: each connection RBAC decided is one call (allowed + denied)
        "requests_served": 4,  # only the allowed ones reached tax (issue 16: 403s are not served)
        "tls_handshakes": 6, "tls_failures": 0, "rbac_allowed": 4, "rbac_denied": 2, "upstreams": (),
        "uptime_s": 7,
    }


def test_figures_pick_the_declared_upstream_clusters_only() -> None:
    figs = admin_stats.figures(admin_stats.parse_stats(INVOICE_JSON), 27945, upstreams=("tax", "nothing"))
    assert (figs.active_connections, figs.tls_handshakes, figs.tls_failures) == (1, 6, 1)
    (tax,) = figs.upstreams  # not local_app / local_agent, not an undeclared one
    assert tax.destination == "tax" and tax.cluster.startswith("tax.default.dc1.internal.")
    assert (tax.active_connections, tax.connections_total, tax.requests_total) == (0, 6, 6)
    # Another port is another listener: nothing of it is counted.
    assert admin_stats.figures(admin_stats.parse_stats(INVOICE_JSON), 1, ()).tls_handshakes == 0


def test_each_subset_cluster_of_a_declared_upstream_is_a_row() -> None:
    td = "074ffb63-487e-460c-8cf7-80b11f50267e.consul"
    stats = {f"cluster.{c}.internal.{td}.upstream_rq_total": n
             for c, n in (("v1.tax.default.dc1", 7), ("v2.tax.default.dc1", 3), ("tax.default.dc1", 1))}
    rows = admin_stats.figures(stats, 1, upstreams=("tax",)).upstreams
    assert [(r.destination, r.cluster.split(".internal.")[0], r.requests_total) for r in rows] == [
        ("tax", "tax.default.dc1", 1), ("tax", "v1.tax.default.dc1", 7), ("tax", "v2.tax.default.dc1", 3)]


def test_figures_of_an_http_public_listener_count_requests_and_http_rbac() -> None:
    # Envoy's names for an HTTP public listener (HCM stat_prefix public_listener, HTTP RBAC filter).
    stats = {"http.public_listener.downstream_rq_total": 9, "http.public_listener.rbac.allowed": 7,
             "http.public_listener.rbac.denied": 2, "connect_authz.rbac.denied": 5,
             "listener.0.0.0.0_21000.ssl.handshake": 3}
    figs = admin_stats.figures(stats, 21000, ())
    assert (figs.protocol, figs.requests_total, figs.rbac_allowed, figs.rbac_denied, figs.tls_handshakes) == (
        "http", 9, 7, 2, 3)
    # Issue 16: the 2 requests RBAC answered 403 were received, not served.
    assert figs.to_json()["requests_served"] == 7


def test_the_admin_filter_keeps_what_the_figures_need_and_little_else() -> None:
    keep = re.compile(admin_stats.STATS_FILTER)
    names = [line.split(": ")[0] for line in TAX_TEXT.splitlines()]
    kept = [n for n in names if keep.search(n)]
    assert admin_stats.figures(dict.fromkeys(kept, 1), 28697, ()) == admin_stats.figures(
        dict.fromkeys(names, 1), 28697, ())
    assert "listener.admin.downstream_cx_active" not in kept and "cluster_manager.cds.version_text" not in kept

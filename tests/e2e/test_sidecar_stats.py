"""Issue 6 point 2: a sidecar's live Envoy figures, from the dev agent's
`/v1/nomadmesh/sidecar/<id>/stats` (it enters the allocation's namespace) into the service page.

Pure: the parse of Envoy admin stats captured from the sample mesh's tax and invoice sidecars.
Agent: 404/503 answers without root. End to end (root, CNI): the three sample services in bridge
mode with real Envoy sidecars; order is called, the figures grow, a deny invoice → tax shows as
RBAC denials on tax's sidecar, and the service page shows them (screenshot
test-artifacts/screenshots/service-stats.png when Debian's chromium is there).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import requests

from support.agents import RunningAgent
from support.browser import ARGS, CHROMIUM, SHOTS
from support.sample_mesh import GATEWAY, NAMES, NEEDS_BRIDGE, deploy_samples, order_call
from support.waiting import wait_until
from support.consul_api import register

from nomadmesh.agent.connect import admin_stats
from nomadmesh.deploy import intentions as writer


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
        "requests_total": 6,  # TCP: each authorised connection is one call (RBAC allowed + denied)
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


def test_figures_of_an_http_public_listener_count_requests_and_http_rbac() -> None:
    # Envoy's names for an HTTP public listener (HCM stat_prefix public_listener, HTTP RBAC filter).
    stats = {"http.public_listener.downstream_rq_total": 9, "http.public_listener.rbac.allowed": 7,
             "http.public_listener.rbac.denied": 2, "connect_authz.rbac.denied": 5,
             "listener.0.0.0.0_21000.ssl.handshake": 3}
    figs = admin_stats.figures(stats, 21000, ())
    assert (figs.protocol, figs.requests_total, figs.rbac_allowed, figs.rbac_denied, figs.tls_handshakes) == (
        "http", 9, 7, 2, 3)


def test_the_admin_filter_keeps_what_the_figures_need_and_little_else() -> None:
    keep = re.compile(admin_stats.STATS_FILTER)
    names = [line.split(": ")[0] for line in TAX_TEXT.splitlines()]
    kept = [n for n in names if keep.search(n)]
    assert admin_stats.figures({n: 1 for n in kept}, 28697, ()) == admin_stats.figures(
        {n: 1 for n in names}, 28697, ())
    assert "listener.admin.downstream_cx_active" not in kept and "cluster_manager.cds.version_text" not in kept


def stats_url(agent: RunningAgent, sidecar_id: str) -> str:
    return f"{agent.consul_addr}/v1/nomadmesh/sidecar/{requests.utils.quote(sidecar_id, safe='')}/stats"


def test_endpoint_answers_404_for_unknown_or_non_proxy_and_503_for_a_sidecar_it_does_not_run(
        running_agent: RunningAgent) -> None:
    register(running_agent, "s-web")  # through the agent API: a sidecar no allocation runs
    unknown = requests.get(stats_url(running_agent, "nope"), timeout=5)
    assert unknown.status_code == 404 and "Unknown service ID 'nope'" in unknown.text
    plain = requests.get(stats_url(running_agent, "s-web"), timeout=5)
    assert plain.status_code == 404 and "not a sidecar proxy" in plain.text
    side = requests.get(stats_url(running_agent, "s-web-sidecar-proxy"), timeout=5)
    assert side.status_code == 503 and "not run by this agent's Nomad" in side.text
    assert len(side.text.strip().splitlines()) == 1
    # The UI says why, in the page.
    html = requests.get(f"{running_agent.consul_addr}/ui/services/s-web", timeout=10).text
    assert 'data-stats="unavailable"' in html and "not run by this agent&#39;s Nomad" in html


def _figures(agent: RunningAgent, sidecar_id: str) -> dict[str, Any]:
    r = requests.get(stats_url(agent, sidecar_id), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.envoy
@pytest.mark.browser  # it takes a screenshot of the page
@NEEDS_BRIDGE[0]  # root
@NEEDS_BRIDGE[1]  # CNI plugins
@pytest.mark.timeout(150)
def test_sample_mesh_figures_grow_and_show_denials_in_the_page(sample_mesh: dict[str, Any]) -> None:
    nomad, cons, agent = sample_mesh["nomad"], sample_mesh["consul"], sample_mesh["agent"]
    port = deploy_samples(nomad)  # order is called through the sample ingress gateway
    wait_until(lambda: (r := order_call(port)).status_code == 200 and r, 20, what="order answers")
    sidecar = {s["Service"].removesuffix("-sidecar-proxy"): s["ID"] for s in cons.agent.services().values()
               if s.get("Kind") == "connect-proxy"}
    assert set(sidecar) == set(NAMES)

    before = {n: _figures(agent, sidecar[n]) for n in NAMES}
    assert {before[n]["Service"] for n in NAMES} == set(NAMES)
    assert before["tax"]["Admin"] == "127.0.0.2:19000"
    calls = 4
    for _ in range(calls):
        assert order_call(port).status_code == 200
    time.sleep(1.1)  # past the 1 s cache
    after = {n: _figures(agent, sidecar[n]) for n in NAMES}
    for n in ("invoice", "tax"):
        b, a = before[n]["Figures"], after[n]["Figures"]
        assert a["tls_handshakes"] >= 1 and a["tls_handshakes"] >= b["tls_handshakes"] + calls, (n, b, a)
        assert a["requests_total"] >= b["requests_total"] + calls, (n, b, a)
        assert a["rbac_denied"] == 0 and a["protocol"] == "tcp"
    (inv_up,) = after["order"]["Figures"]["upstreams"]
    (inv_up0,) = before["order"]["Figures"]["upstreams"]
    assert inv_up["destination"] == "invoice"
    assert inv_up["connections_total"] >= inv_up0["connections_total"] + calls
    # Cached: an immediate second read is the same fetch.
    assert _figures(agent, sidecar["tax"])["FetchedAt"] == _figures(agent, sidecar["tax"])["FetchedAt"]

    writer.set_intention(cons, "invoice", "tax", "deny", "stats test")
    wait_until(lambda: order_call(port).status_code == 502, 3, step=0.05, what="deny enforced")
    # The first 502 can come from the listener swap closing a connection rather than from RBAC;
    # one more call is certain to reach tax's new listener and be denied there.
    assert order_call(port).status_code == 502
    denied = wait_until(lambda: (f := _figures(agent, sidecar["tax"])["Figures"])["rbac_denied"] >= 1 and f, 3,
                        step=0.3, what="RBAC denial counted on tax's sidecar")
    print(f"\nfigures: tax sidecar after {calls} calls and a deny: {json.dumps(denied)}")

    html = requests.get(f"{agent.consul_addr}/ui/services/tax", timeout=10).text
    section = html[html.index('id="h-stats"'):html.index('id="h-logs"')]
    shown = {k: int(v) for k, v in re.findall(r'data-figure="(\w+)">(\d+)<', section)}
    assert shown["rbac_denied"] >= 1 and shown["tls_handshakes"] >= calls and shown["requests_total"] >= calls
    assert 'data-stats="live"' in section and sidecar["tax"] in section
    order_html = requests.get(f"{agent.consul_addr}/ui/services/order", timeout=10).text
    assert re.search(r'<tr data-upstream="invoice"><th scope="row">invoice</th><td>\d+</td><td>(\d+)</td>',
                     order_html)
    _screenshot(agent)
    writer.delete_intention(cons, "invoice", "tax")
    for name in (*NAMES, GATEWAY):
        nomad.job.deregister_job(name)


def _screenshot(agent: RunningAgent) -> None:
    """The tax page in headless Chromium, its figures refreshed in place; skipped without chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("no playwright: screenshot skipped")
        return
    if not CHROMIUM.exists():
        print("no chromium: screenshot skipped")
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.goto(f"{agent.consul_addr}/ui/services/tax")
            denied = page.locator('[data-figure="rbac_denied"]')
            assert int(denied.inner_text()) >= 1
            v0 = int(page.evaluate("Number(document.body.dataset.version || 0)"))
            # The figures section asks for a refetch every few seconds, without any catalog change.
            page.wait_for_function(f"Number(document.body.dataset.version || 0) >= {v0 + 2}", timeout=10_000)
            page.locator("#h-stats").scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "service-stats.png"), full_page=True)
        finally:
            browser.close()

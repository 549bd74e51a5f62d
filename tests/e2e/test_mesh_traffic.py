"""Issue 16: the mesh's traffic over the last minute, from the dev agent's /v1/nomadmesh/traffic (it samples
its sidecars' Envoy stats) and from a real Prometheus (Debian's) scraping the sidecars' metrics listeners
(`envoy_prometheus_bind_addr`), into `nomadmesh top --once --json`.

One sample mesh (order → invoice → tax, real Envoy sidecars in bridge mode) for the module: tax speaks
HTTP; N calls pass, then invoice → tax is denied and M calls are refused by tax's RBAC (403). The
edge invoice → tax must show a 4xx share of about M/(N+M), denials per second and a p99 latency;
order → invoice its connections. (The maths: tests/unit/test_traffic_figures.py.)
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.deploy import intentions as writer
from nomadmesh.ui.promql import prometheus_figures
from support.browser import CHROMIUM, SHOTS
from support.net import free_port
from support.paths import SERVICES
from support.sample_mesh import GATEWAY, NAMES, NEEDS_BRIDGE, deploy_samples, order_call
from support.waiting import wait_until

PROMETHEUS = shutil.which("prometheus")
METRICS_BIND = "0.0.0.0:9102"  # inside each allocation's namespace: reachable at the allocation's IP

ALLOWED_CALLS = 6
DENIED_CALLS = 4


def _services_with_metrics(root: Path) -> Path:
    """The samples, each sidecar serving its Envoy metrics at METRICS_BIND (tax also speaks HTTP)."""
    services = root / "services"
    shutil.copytree(SERVICES, services)
    for name in NAMES:
        path = services / name / "service.json"
        doc = json.loads(path.read_text())
        proxy = doc["service"]["connect"]["sidecar_service"].setdefault("proxy", {})
        proxy["config"] = {"envoy_prometheus_bind_addr": METRICS_BIND}
        if name == "tax":
            proxy["config"]["protocol"] = "http"
        path.write_text(json.dumps(doc, indent=2))
    return services


def _prometheus(tmp: Path, targets: list[str], request: pytest.FixtureRequest) -> str:
    """Debian's Prometheus on a free port scraping `targets` every second (stopped after the test); its URL."""
    assert PROMETHEUS is not None
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                  "scrape_configs": [{"job_name": "sidecars", "metrics_path": "/metrics",
                                                      "static_configs": [{"targets": targets}]}]}))
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)

    def stop() -> None:
        proc.terminate()
        proc.wait(10)

    request.addfinalizer(stop)
    url = f"http://127.0.0.1:{port}"

    def all_up() -> bool:
        try:
            active = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        except (requests.RequestException, ValueError, KeyError):
            return False
        return len(active) == len(targets) and all(t["health"] == "up" for t in active)

    wait_until(all_up, 20, step=0.5, what="Prometheus scrapes every sidecar's /metrics")
    return url


def _traffic(agent: Any) -> dict[str, Any]:
    r = requests.get(f"{agent.consul_addr}/v1/nomadmesh/traffic", timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def _edge(body: dict[str, Any], src: str, dst: str) -> dict[str, Any]:
    return next(e for e in body["edges"] if (e["source"], e["destination"]) == (src, dst))


@pytest.mark.envoy
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
@NEEDS_BRIDGE[0]  # root
@NEEDS_BRIDGE[1]  # CNI plugins
@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus (scripts/setup.sh)")
@pytest.mark.timeout(180)
def test_edges_show_rates_error_share_denials_and_latency(sample_mesh: dict[str, Any], tmp_path: Path,
                                                           request: pytest.FixtureRequest, page: Any) -> None:
    nomad, cons, agent = sample_mesh["nomad"], sample_mesh["consul"], sample_mesh["agent"]
    assert cons.config.set("service-defaults", "tax", {"Protocol": "http"})
    port = deploy_samples(nomad, _services_with_metrics(tmp_path))
    wait_until(lambda: order_call(port).status_code == 200, 20, what="order answers")
    ips = [nomad.allocation.get_allocation(a["ID"])["NetworkStatus"]["Address"]
           for n in NAMES for a in nomad.job.get_allocations(n) if a["DesiredStatus"] == "run"]
    metrics_url = _prometheus(tmp_path, [f"{ip}:{METRICS_BIND.rsplit(':', 1)[1]}" for ip in ips], request)
    assert requests.get(f"{agent.consul_addr}/v1/nomadmesh/traffic", params={"window": "x"},
                        timeout=5).status_code == 400
    first = _traffic(agent)  # starts the sampler: a first sample of every sidecar, before the calls
    assert first["sidecars"] == len(NAMES) and "Envoy" in first["source"]

    for _ in range(ALLOWED_CALLS):
        assert order_call(port).status_code == 200
    writer.set_intention(cons, "invoice", "tax", "deny", "traffic test")
    wait_until(lambda: order_call(port).status_code == 502, 5, step=0.05, what="deny enforced")
    for _ in range(DENIED_CALLS):
        assert order_call(port).status_code == 502

    def settled() -> dict[str, Any] | None:
        body = _traffic(agent)
        e = _edge(body, "invoice", "tax")
        return body if e["share_4xx"] and e["p99_ms"] is not None and e["rbac_denied_per_s"] else None

    body = wait_until(settled, 20, step=1, what="denials and latency in the figures")
    edge = _edge(body, "invoice", "tax")
    tax = next(s for s in body["services"] if s["name"] == "tax")
    print(f"\nfigures: invoice → tax {json.dumps(edge)}\nfigures: tax {json.dumps(tax)}")
    # tax is http, so invoice's upstream listener for it speaks HTTP: statuses and latency are measured
    # by the caller's sidecar; the denials are tax's (its only caller).
    assert edge["measured_at"] == "source" and edge["unit"] == "requests"
    assert tax["protocol"] == "http"
    # Every call reached tax once: allowed ones answered 2xx, denied ones 403; the probe calls in between
    # count as one or the other, so the share lies between these bounds.
    answered = tax["rps"] * tax["window_s"]
    assert answered >= ALLOWED_CALLS + DENIED_CALLS - 0.5
    denied = edge["share_4xx"] * answered
    assert DENIED_CALLS - 0.5 <= denied <= answered - ALLOWED_CALLS + 0.5, (denied, answered)
    assert edge["share_2xx"] + edge["share_4xx"] + edge["share_5xx"] == pytest.approx(1.0)
    assert edge["error_share"] == pytest.approx(edge["share_4xx"] + edge["share_5xx"])
    assert edge["rbac_denied_per_s"] * tax["window_s"] >= DENIED_CALLS - 0.5
    assert 0 < edge["p50_ms"] <= edge["p99_ms"]
    order_invoice = _edge(body, "order", "invoice")
    assert order_invoice["unit"] == "connections" and order_invoice["rps"] > 0  # no service-defaults: tcp upstream
    # Each caller's Envoy counts the TLS failures it meets per upstream cluster: read (not None), none here.
    assert edge["tls_failures_per_s"] == 0.0 and order_invoice["tls_failures_per_s"] == 0.0

    # The terminal view prints the same per-edge figures for scripts.
    out = CliRunner().invoke(cli, ["top", "--once", "--json", "--consul-addr", agent.consul_addr,
                                   "--nomad-addr", agent.nomad_addr])
    assert out.exit_code == 0, out.output
    snap = json.loads(out.output)
    row = next(e for e in snap["edges"] if (e["source"], e["destination"]) == ("invoice", "tax"))
    assert row["verdict"] == "denied" and row["share_4xx"] > 0 and row["p99_ms"] is not None
    assert {"source", "destination", "rps", "error_share", "p99_ms"} <= set(row)
    tax_row = next(s for s in snap["services"] if s["name"] == "tax")
    assert tax_row["health"] == "all passing" and tax_row["versions"] == {"0": 1}
    assert snap["has_figures"] is True
    plain = CliRunner().invoke(cli, ["top", "--once", "--consul-addr", agent.consul_addr,
                                     "--nomad-addr", agent.nomad_addr])
    assert plain.exit_code == 0 and "invoice → tax" in plain.output and "denied" in plain.output

    # The same figures from Prometheus, with the queries Consul's UI uses over the same Envoy metrics.
    upstreams = {"order": ["invoice"], "invoice": ["tax"], "tax": []}

    def scraped() -> Any:
        figs = prometheus_figures(metrics_url, upstreams)
        e = figs.edge("invoice", "tax")
        return figs if e and e.share_4xx and e.p99_ms is not None and e.rbac_denied_per_s else None

    figs = wait_until(scraped, 20, step=1, what="Prometheus figures show the denials")
    prom_edge, prom_tax = figs.edge("invoice", "tax"), figs.service("tax")
    assert prom_edge is not None and prom_tax is not None
    print(f"figures: Prometheus invoice → tax {json.dumps(prom_edge.to_json())}")
    # increase() extrapolates to the window's edges: counts agree roughly, not exactly. A burst seen by
    # only a few scrapes on a loaded machine came out 18 for 12 answered (CI), so the bound is relative.
    prom_answered = prom_tax.rps * prom_tax.window_s
    assert abs(prom_answered - answered) <= max(3, 0.6 * answered), (prom_answered, answered)
    assert abs(prom_edge.share_4xx - edge["share_4xx"]) <= 0.2  # type: ignore[operator]
    assert prom_edge.measured_at == "destination" and prom_tax.protocol == "http"
    order_inv = figs.edge("order", "invoice")
    assert order_inv is not None and order_inv.rps > 0 and order_inv.unit == "connections"
    via_top = CliRunner().invoke(cli, ["top", "--once", "--json", "--metrics-url", metrics_url,
                                       "--consul-addr", agent.consul_addr, "--nomad-addr", agent.nomad_addr])
    assert via_top.exit_code == 0, via_top.output
    assert json.loads(via_top.output)["figures_from"] == f"Prometheus {metrics_url}"

    # The service page counts RBAC's 403s as received, not served.
    html = requests.get(f"{agent.consul_addr}/ui/services/tax", timeout=10).text
    shown = {k: int(v) for k, v in re.findall(r'data-figure="(\w+)">(\d+)<', html)}
    assert shown["rbac_denied"] >= DENIED_CALLS and shown["requests_served"] == shown["requests_total"] - shown[
        "rbac_denied"]

    _live_graph_in_the_browser(page, agent, port)
    writer.delete_intention(cons, "invoice", "tax")
    for name in (*NAMES, GATEWAY):
        nomad.job.deregister_job(name)


def _live_graph_in_the_browser(page: Any, agent: Any, port: int) -> None:
    """The topology in headless Chromium: edge figures and error styling, then deny order → invoice
    from its edge panel and see the edge change (how fast is printed, not asserted)."""
    page.goto(f"{agent.consul_addr}/ui/topology")
    page.locator("body[data-live='ready'][data-version]").wait_for()
    denied_edge = page.locator('svg#topology path[data-edge="invoice>tax"]')
    assert denied_edge.get_attribute("data-errors") == "true" and "edge-errors" in denied_edge.get_attribute("class")
    label = page.locator('svg#topology [data-edge-label="invoice>tax"]').text_content()
    assert "rps" in label and "% err" in label and "p99" in label, label
    assert page.locator("[data-figures='live']").count() == 1
    # Figures move without any catalog change: the page refetches them every few seconds.
    for _ in range(3):
        assert order_call(port).status_code == 502
    v0 = int(page.evaluate("Number(document.body.dataset.version || 0)"))
    wait_until(lambda: int(page.evaluate("Number(document.body.dataset.version || 0)")) > v0, 10,
               what="a periodic refetch")
    page.screenshot(path=str(SHOTS / "topology-live.png"), full_page=True)

    page.locator('svg#topology a[data-edge-link="order>invoice"]').click()
    panel = page.locator('[data-panel="order>invoice"]')
    assert "order → invoice" in panel.inner_text()
    assert "TLS failures on this edge: 0.00/s (met by order's sidecar)" in panel.inner_text()
    t0 = time.monotonic()
    panel.get_by_role("button", name="Deny order to invoice").click()
    page.locator('svg#topology path[data-edge="order>invoice"][data-state="denied"]').wait_for(
        state="attached", timeout=10_000)
    print(f"figures: edge drawn denied {(time.monotonic() - t0) * 1000:.0f} ms after the click")
    assert page.url.endswith("/ui/topology?edge=order%3Einvoice")  # back on the graph, panel open
    page.screenshot(path=str(SHOTS / "topology-edge-panel.png"), full_page=True)
    wait_until(lambda: order_call(port).status_code == 502, 5, step=0.05, what="deny from the graph enforced")

"""The UI in real headless Chromium (Debian's /usr/bin/chromium through playwright) against a real agent.

Screenshots of every page go to test-artifacts/screenshots/ (gitignored):
  services.png       the services page: instances, health with check output, sidecars, tags
  service.png        one service: upstreams/downstreams with the deciding intention, logs, figures
  intentions.png     the intentions list after creating a deny in the form
  intentions-error.png  a refused form, with the error in the page
  topology-50.png    the topology of 50 registered services
"""
from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from support.agents import RunningAgent
from support.browser import CHROMIUM, SHOTS
from support.consul_api import cclient, register, sources, ttl

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]


def open_live(page: Any, url: str) -> None:
    """Open `url` and wait until its live connection has refetched once (so later changes show)."""
    page.goto(url)
    # A selector, not wait_for_function: the page's CSP forbids the eval that one needs.
    page.locator("body[data-live='ready'][data-version]").wait_for()


def test_services_page_lists_services_with_sidecars(page: Any, module_agent: RunningAgent) -> None:
    register(module_agent, "b-order", upstreams=("b-invoice",), tags=("shop",))
    register(module_agent, "b-invoice", upstreams=("b-tax",))
    register(module_agent, "b-tax")
    ttl(module_agent, "b-tax", "pass", "HTTP GET /health: 200 OK")
    open_live(page, f"{module_agent.consul_addr}/ui/services")
    # Keyboard: the skip link comes first, then the navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for name in ("b-order", "b-invoice", "b-tax"):
        row = page.locator(f'tr[data-service="{name}"]')
        assert row.locator("th a").inner_text() == name
        assert row.locator(f'[data-sidecar="{name}-sidecar-proxy"]').count() == 1
    tax = page.locator('tr[data-service="b-tax"]')
    tax.locator("details summary").first.click()
    assert "HTTP GET /health: 200 OK" in tax.inner_text()
    assert "b-invoice" in page.locator('tr[data-service="b-order"] .sidecar').inner_text()
    assert page.locator('nav a[aria-current="page"]').inner_text() == "Services"
    page.screenshot(path=str(SHOTS / "services.png"), full_page=True)


def test_pages_run_under_their_content_security_policy(page: Any, module_agent: RunningAgent) -> None:
    register(module_agent, "b-csp", upstreams=("b-csp-db",))
    assert cclient(module_agent).config.set("service-defaults", "b-csp-db", {"Protocol": "http"})  # an L7 form
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    for path in ("services", "services/b-csp", "intentions", "topology", "topology?edge=b-csp%3Eb-csp-db",
                 "validations"):
        open_live(page, f"{module_agent.consul_addr}/ui/{path}")  # ui.js ran, fetched a fragment, has events
        if "edge=" in path:
            assert page.locator('[data-panel="b-csp>b-csp-db"] form.l7-add').count() == 1
    assert violations == []  # the policy lets every page load, run its script and go live


def test_change_through_the_api_appears_without_a_reload(page: Any, module_agent: RunningAgent) -> None:
    # How fast is printed, not asserted: the bound is only there so a missing update fails, not hangs.
    open_live(page, f"{module_agent.consul_addr}/ui/services")
    t0 = time.monotonic()
    register(module_agent, "b-live")
    page.locator('tr[data-service="b-live"]').wait_for(timeout=10_000)
    registered_ms = (time.monotonic() - t0) * 1000
    open_live(page, f"{module_agent.consul_addr}/ui/intentions")
    t0 = time.monotonic()
    cclient(module_agent).config.set("service-intentions", "b-live", {
        "Kind": "service-intentions", "Name": "b-live", "Sources": [{"Name": "b-api", "Action": "deny"}]})
    page.locator('tr[data-intention="b-api>b-live"]').wait_for(timeout=10_000)
    print(f"\nfigures: registration shown after {registered_ms:.0f} ms, "
          f"intention shown after {(time.monotonic() - t0) * 1000:.0f} ms")


def test_create_flip_delete_intention_in_the_page(page: Any, module_agent: RunningAgent) -> None:
    register(module_agent, "i-web", upstreams=("i-db",))
    register(module_agent, "i-db")
    page.goto(f"{module_agent.consul_addr}/ui/intentions")
    page.get_by_label("Source").fill("i-web")
    page.get_by_label("Destination").fill("i-db")
    page.get_by_label("deny").check()
    page.get_by_label("Description").fill("no direct db access")
    page.get_by_role("button", name="Save intention").click()
    row = page.locator('tr[data-intention="i-web>i-db"]')
    assert row.get_attribute("data-action") == "deny" and "no direct db access" in row.inner_text()
    assert "saved" in page.locator(".notice").inner_text()
    assert sources(module_agent, "i-db") == {"i-web": "deny"}
    page.screenshot(path=str(SHOTS / "intentions.png"), full_page=True)

    page.get_by_role("button", name="Flip i-web to i-db to allow").click()
    page.locator('tr[data-intention="i-web>i-db"][data-action="allow"]').wait_for()
    assert sources(module_agent, "i-db") == {"i-web": "allow"}

    # The service page shows the edge and the intention that decides it.
    page.goto(f"{module_agent.consul_addr}/ui/services/i-db")
    edge = page.locator('[data-kind="downstreams"] tr[data-edge="i-web>i-db"]')
    assert edge.get_attribute("data-verdict") == "allowed" and "i-web → i-db" in edge.inner_text()
    assert page.locator('[data-stats="unavailable"]').count() == 1
    page.screenshot(path=str(SHOTS / "service.png"), full_page=True)

    page.goto(f"{module_agent.consul_addr}/ui/intentions")
    page.get_by_role("button", name="Delete i-web to i-db").focus()
    page.keyboard.press("Enter")  # keyboard works as well as the mouse
    page.locator('tr[data-intention="i-web>i-db"]').wait_for(state="detached")
    assert sources(module_agent, "i-db") is None


def test_refused_form_shows_the_error_in_the_page(page: Any, module_agent: RunningAgent) -> None:
    page.goto(f"{module_agent.consul_addr}/ui/intentions")
    page.get_by_label("Source").fill("e-web")
    # The browser's own `required` check would stop an empty field; a bad value reaches the server.
    page.evaluate("document.getElementById('destination').removeAttribute('required')")
    page.get_by_role("button", name="Save intention").click()
    alert = page.locator("#form-error")
    assert "destination: required" in alert.inner_text()
    assert page.get_by_label("Source").input_value() == "e-web"
    page.screenshot(path=str(SHOTS / "intentions-error.png"), full_page=True)


def test_topology_of_fifty_services(page: Any, agent_factory: Any) -> None:
    agent = agent_factory()
    names = [f"svc-{i:02d}" for i in range(50)]
    for i, name in enumerate(names):  # ten chains of five
        register(agent, name, upstreams=(names[i + 1],) if i % 5 != 4 else ())
    cclient(agent).config.set("service-intentions", "svc-03", {
        "Kind": "service-intentions", "Name": "svc-03", "Sources": [{"Name": "svc-02", "Action": "deny"}]})
    open_live(page, f"{agent.consul_addr}/ui/topology")
    svg = page.locator("svg#topology")
    assert svg.get_attribute("data-nodes") == "50" and svg.get_attribute("data-edges") == "40"
    assert page.locator("svg#topology a.node").count() == 50
    assert svg.locator('path[data-edge="svc-02>svc-03"]').get_attribute("data-verdict") == "denied"
    assert svg.locator('path[data-verdict="allowed"]').count() == 39
    # Readable: no two service boxes overlap on screen, and every label is the full name.
    boxes = page.evaluate("""() => [...document.querySelectorAll('svg#topology a.node rect')].map(r => {
        const b = r.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; })""")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]
    labels = page.locator("svg#topology a.node text").all_text_contents()  # SVG text has no innerText
    assert sorted(labels) == names
    # A change flips the edge without a reload.
    assert cclient(agent).config.delete("service-intentions", "svc-03")
    t0 = time.monotonic()
    # A straight path has no height: wait for "attached", not "visible".
    page.locator('svg#topology path[data-edge="svc-02>svc-03"][data-verdict="allowed"]').wait_for(
        state="attached", timeout=10_000)
    print(f"\nfigures: topology of 50 updated {(time.monotonic() - t0) * 1000:.0f} ms after the change")
    page.screenshot(path=str(SHOTS / "topology-50.png"), full_page=True)
    # A bound against hanging, not a speed check (bench/ui_topology.py measures that): on a loaded
    # 2-core machine the page's 100 health reads alone took 4-7 s.
    assert requests.get(f"{agent.consul_addr}/ui/topology", timeout=30).status_code == 200


def test_l7_rule_added_from_the_edge_panel(page: Any, module_agent: RunningAgent) -> None:
    register(module_agent, "l-web", upstreams=("l-api",))
    register(module_agent, "l-api")
    ttl(module_agent, "l-api", "pass", "ok")
    assert cclient(module_agent).config.set("service-defaults", "l-api", {"Protocol": "http"})
    open_live(page, f"{module_agent.consul_addr}/ui/topology?edge=l-web%3El-api")
    panel = page.locator('[data-panel="l-web>l-api"]')
    form = panel.locator("form.l7-add")
    form.get_by_label("Action").select_option("deny")
    form.get_by_label("Path match").select_option("path-prefix")
    form.get_by_label("Path", exact=True).fill("/admin")
    form.get_by_label("DELETE").check()
    form.get_by_role("button", name="Add L7 rule to l-web to l-api").click()
    # Back on the graph with the panel open: the edge is decided per request and the rule is listed.
    page.locator('svg#topology path[data-edge="l-web>l-api"][data-state="per-request"]').wait_for(state="attached")
    rule = page.locator('[data-panel="l-web>l-api"] tr[data-rule="1"]')
    assert "deny PathPrefix=/admin Methods=DELETE" in rule.inner_text()
    assert cclient(module_agent).config.get("service-intentions", "l-api")["Sources"][0]["Permissions"] == [
        {"Action": "deny", "HTTP": {"PathPrefix": "/admin", "Methods": ["DELETE"]}}]
    page.screenshot(path=str(SHOTS / "topology-l7.png"), full_page=True)
    # A regex Envoy would refuse is refused in the page, with the CLI's message; the rule list is unchanged.
    form = page.locator('[data-panel="l-web>l-api"] form.l7-add')
    form.get_by_label("Path match").select_option("path-regex")
    form.get_by_label("Path", exact=True).fill("/v[0-9")
    form.get_by_role("button", name="Add L7 rule to l-web to l-api").click()
    assert "invalid RE2 regular expression: missing ]" in page.locator("[data-l7-error]").inner_text()
    assert len(cclient(module_agent).config.get("service-intentions", "l-api")["Sources"][0]["Permissions"]) == 1


def test_service_routing_and_release_and_validations_linking_to_the_edge(page: Any,
                                                                          module_agent: RunningAgent) -> None:
    register(module_agent, "r-web", upstreams=("r-api",))
    register(module_agent, "r-api")
    c = cclient(module_agent)
    assert c.config.set("service-defaults", "r-api", {"Protocol": "http"})
    release = {"nomadmesh-release": "r-7"}
    assert c.config.set("service-resolver", "r-api", {"Meta": release, "Subsets": {
        "stable": {"Filter": 'Service.Meta.nomadmesh_canary != "true"', "OnlyPassing": True},
        "canary": {"Filter": 'Service.Meta.nomadmesh_canary == "true"', "OnlyPassing": True}}})
    assert c.config.set("service-splitter", "r-api", {"Meta": release, "Splits": [
        {"Weight": 90, "ServiceSubset": "stable"}, {"Weight": 10, "ServiceSubset": "canary"}]})
    assert c.config.set("service-router", "r-api", {"Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/beta"}}, "Destination": {"ServiceSubset": "canary"}}]})
    open_live(page, f"{module_agent.consul_addr}/ui/services/r-api")
    assert "PathPrefix=/beta" in page.locator('table.routes tr[data-route="1"]').inner_text()
    assert page.locator('table.splits tr[data-split="canary"]').get_attribute("data-weight") == "10.0"
    assert "10% of requests to the canary" in page.locator('[data-release="r-7"]').inner_text()
    page.locator("#h-routing").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "service-routing.png"), full_page=True)

    assert c.config.set("service-intentions", "r-api", {"Sources": [{"Name": "r-web", "Action": "deny"}]})
    open_live(page, f"{module_agent.consul_addr}/ui/validations")
    finding = page.locator('tr[data-finding="upstream-denied"][data-edge="r-web>r-api"]')
    assert "r-web declares r-api as an upstream" in finding.inner_text()
    page.screenshot(path=str(SHOTS / "validations.png"), full_page=True)
    finding.get_by_role("link", name="edge r-web → r-api").click()
    page.locator('[data-panel="r-web>r-api"]').wait_for()  # the finding opened its edge on the graph
    assert page.locator('svg#topology path[data-edge="r-web>r-api"]').get_attribute("data-verdict") == "denied"

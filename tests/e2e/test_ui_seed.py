"""Issue 6's seed flow in headless Chromium: the three sample services with real Envoy sidecars on
the dev agent; a deny invoice → tax made in the UI breaks the order call and turns the topology
edge denied; deleting it in the UI restores both.

Screenshots (test-artifacts/screenshots/): seed-services.png (order, invoice, tax with healthy
sidecars), seed-topology-denied.png, seed-topology-restored.png.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_ui_browser import open_live

from support.browser import SHOTS
from support.sample_mesh import CHAIN, GATEWAY, NAMES, NEEDS_BRIDGE, deploy_samples, order_call
from support.waiting import wait_until

pytestmark = [*NEEDS_BRIDGE, pytest.mark.browser, pytest.mark.envoy]


def test_deny_in_the_ui_breaks_the_order_call_and_delete_restores_it(sample_mesh: dict[str, Any], page: Any) -> None:
    nomad, agent = sample_mesh["nomad"], sample_mesh["agent"]
    port = deploy_samples(nomad)  # order is called through the sample ingress gateway
    first = wait_until(lambda: (r := order_call(port)).status_code == 200 and r, 20, what="order answers")
    assert [json.loads(line) for line in first.text.splitlines()] == CHAIN

    ui = f"{agent.consul_addr}/ui"
    open_live(page, f"{ui}/services")
    for name in NAMES:
        row = page.locator(f'tr[data-service="{name}"]')
        row.locator('.sidecar[data-up="yes"]').wait_for(timeout=15_000)  # sidecar checks pass
        assert "passing" in row.locator("td").first.inner_text()
        assert "job" in row.inner_text() and name in row.inner_text()
    page.screenshot(path=str(SHOTS / "seed-services.png"), full_page=True)

    page.goto(f"{ui}/intentions")
    page.get_by_label("Source").fill("invoice")
    page.get_by_label("Destination").fill("tax")
    page.get_by_label("deny").check()
    page.get_by_role("button", name="Save intention").click()
    page.locator('tr[data-intention="invoice>tax"][data-action="deny"]').wait_for()
    t0 = time.monotonic()
    # A 502 Response is falsy (requests' __bool__ is .ok), so wait for its text instead.
    denied = wait_until(lambda: (r := order_call(port)).status_code == 502 and r.text, 3, step=0.02,
                        what="deny enforced")
    print(f"\nfigures: deny saved in the UI -> order call fails after {(time.monotonic() - t0) * 1000:.0f} ms")
    assert "tax" in denied or "invoice" in denied
    open_live(page, f"{ui}/topology")
    assert page.locator('svg#topology path[data-edge="invoice>tax"]').get_attribute("data-verdict") == "denied"
    assert page.locator('svg#topology path[data-edge="order>invoice"]').get_attribute("data-verdict") == "allowed"
    page.screenshot(path=str(SHOTS / "seed-topology-denied.png"), full_page=True)

    page.goto(f"{ui}/intentions")
    page.get_by_role("button", name="Delete invoice to tax").click()
    page.locator('tr[data-intention="invoice>tax"]').wait_for(state="detached")
    restored = wait_until(lambda: (r := order_call(port)).status_code == 200 and r, 3, step=0.02, what="restored")
    assert [json.loads(line) for line in restored.text.splitlines()] == CHAIN
    open_live(page, f"{ui}/topology")
    assert page.locator('svg#topology path[data-edge="invoice>tax"]').get_attribute("data-verdict") == "allowed"
    page.screenshot(path=str(SHOTS / "seed-topology-restored.png"), full_page=True)
    for name in (*NAMES, GATEWAY):
        nomad.job.deregister_job(name)

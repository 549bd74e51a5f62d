"""Issue 16: the mesh's traffic over the last minute, from the dev agent's /v1/nomadmesh/traffic (it samples
its sidecars' Envoy stats) into `nomadmesh top --once --json`.

One sample mesh (order → invoice → tax, real Envoy sidecars in bridge mode) for the module: tax speaks
HTTP; N calls pass, then invoice → tax is denied and M calls are refused by tax's RBAC (403). The
edge invoice → tax must show a 4xx share of M/(N+M), denials per second and a p99 latency; order →
invoice its connections. (The maths: tests/unit/test_traffic_figures.py.)
"""
from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.deploy import intentions as writer
from support.sample_mesh import GATEWAY, NAMES, NEEDS_BRIDGE, deploy_samples, order_call
from support.waiting import wait_until

ALLOWED_CALLS = 6
DENIED_CALLS = 4


def _traffic(agent: Any) -> dict[str, Any]:
    r = requests.get(f"{agent.consul_addr}/v1/nomadmesh/traffic", timeout=15)
    assert r.status_code == 200, r.text
    return r.json()


def _edge(body: dict[str, Any], src: str, dst: str) -> dict[str, Any]:
    return next(e for e in body["edges"] if (e["source"], e["destination"]) == (src, dst))


@pytest.mark.envoy
@NEEDS_BRIDGE[0]  # root
@NEEDS_BRIDGE[1]  # CNI plugins
@pytest.mark.timeout(180)
def test_edges_show_rates_error_share_denials_and_latency(sample_mesh: dict[str, Any]) -> None:
    nomad, cons, agent = sample_mesh["nomad"], sample_mesh["consul"], sample_mesh["agent"]
    assert cons.config.set("service-defaults", "tax", {"Protocol": "http"})
    port = deploy_samples(nomad)
    wait_until(lambda: order_call(port).status_code == 200, 20, what="order answers")
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
    assert edge["measured_at"] == "destination" and edge["unit"] == "requests"
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
    assert order_invoice["unit"] == "connections" and order_invoice["rps"] > 0

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

    writer.delete_intention(cons, "invoice", "tax")
    for name in (*NAMES, GATEWAY):
        nomad.job.deregister_job(name)

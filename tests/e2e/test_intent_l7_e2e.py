"""A path rule written with `nomadmesh intent allow --path-exact` is enforced by the real Envoy
sidecars of the sample mesh: invoice may call tax at `/` (the chain answers 200) and nowhere else
(tax's sidecar answers 403 to invoice's request for /health), then `--replace` makes it plain again.

Real everything: the agent subprocess in bridge mode, CNI namespaces, Envoy, the CLI over HTTP.
"""
from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from click.testing import CliRunner

from nomadmesh.cli.main import cli
from support.sample_mesh import CHAIN, GATEWAY, NAMES, NEEDS_BRIDGE, deploy_samples, host_port, order_call
from support.waiting import wait_until

pytestmark = [*NEEDS_BRIDGE, pytest.mark.envoy, pytest.mark.timeout(150)]

TAX_UPSTREAM = "http://127.0.0.1:6002"  # invoice's local_bind_port for tax (services/invoice)


def from_invoice(netns: str, path: str) -> int:
    """The HTTP status invoice's namespace gets from its tax upstream listener (0: no answer)."""
    out = subprocess.run(["ip", "netns", "exec", netns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          "-m", "3", f"{TAX_UPSTREAM}{path}"], capture_output=True, text=True, timeout=10)
    return int(out.stdout or 0)


def test_a_cli_written_path_rule_is_enforced_by_envoy(sample_mesh: dict[str, Any]) -> None:
    nomad, cons, agent = sample_mesh["nomad"], sample_mesh["consul"], sample_mesh["agent"]
    port = deploy_samples(nomad)
    _, invoice = host_port(nomad, "invoice", "connect-proxy-invoice")
    netns = sample_mesh["prefix"] + invoice["ID"][:8]
    wait_until(lambda: order_call(port).status_code == 200, 20, what="the chain answers")

    def intent(*args: str) -> str:
        r = CliRunner().invoke(cli, ["intent", *args, "--consul-addr", agent.consul_addr])
        assert r.exit_code == 0, r.output
        return r.stdout

    assert cons.config.set("service-defaults", "tax", {"Protocol": "http"})  # L7 needs an HTTP destination
    out = intent("allow", "invoice", "tax", "--path-exact", "/", "--method", "GET",
                 "--permission", "path-prefix=/,action=deny")
    assert out.startswith("Created: invoice => tax (L7 permissions)")
    wait_until(lambda: from_invoice(netns, "/health") == 403, 10, step=0.05, what="other path denied")
    assert from_invoice(netns, "/") == 200
    resp = order_call(port)
    assert resp.status_code == 200 and [json.loads(line) for line in resp.text.splitlines()] == CHAIN

    assert intent("allow", "invoice", "tax", "--replace").startswith("Updated: invoice => tax (allow, was L7")
    wait_until(lambda: from_invoice(netns, "/health") == 200, 10, step=0.05, what="plain allow again")

    for name in (*NAMES, GATEWAY):
        nomad.job.deregister_job(name)

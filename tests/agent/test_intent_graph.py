"""`nomadmesh graph --verdicts`: each edge shows what the agent's intentions decide for it."""
from __future__ import annotations

import json

from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.deploy import intentions as di
from nomadmesh.deploy.target import consul_client, target_from_env
from support.net import free_port
from support.paths import SERVICES


def graph(agent_addr: str, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["graph", "--services", str(SERVICES), "--verdicts", "--consul-addr", agent_addr,
                                 *args])
    return r.exit_code, r.output


def test_verdicts_on_every_edge(running_agent) -> None:
    consul = consul_client(target_from_env({}, consul_addr=running_agent.consul_addr))
    di.set_intention(consul, "invoice", "tax", "deny")

    code, out = graph(running_agent.consul_addr, "--format", "json")
    assert code == 0, out
    edges = {(e["source"], e["destination"]): e["verdict"] for e in json.loads(out)["edges"]}
    assert edges == {("ingress", "order"): "allow", ("order", "invoice"): "allow", ("invoice", "tax"): "deny"}

    code, out = graph(running_agent.consul_addr, "--format", "mermaid")
    assert code == 0
    assert '-.->|"6002 deny"|' in out and '-->|"6001 allow"|' in out

    # The default policy decides the edges no intention matches.
    code, out = graph(running_agent.consul_addr, "--format", "dot", "--default-policy", "deny")
    assert code == 0
    assert out.count("style=dashed, color=red") == 3  # ingress -> order, order -> invoice, invoice -> tax


def test_without_verdicts_no_network_and_no_labels() -> None:
    r = CliRunner().invoke(cli, ["graph", "--services", str(SERVICES), "--format", "json",
                                 "--consul-addr", f"http://127.0.0.1:{free_port()}"])
    assert r.exit_code == 0
    assert all("verdict" not in e for e in json.loads(r.output)["edges"])


def test_verdicts_with_consul_unreachable() -> None:
    addr = f"http://127.0.0.1:{free_port()}"
    code, out = graph(addr)
    assert code == 1 and f"cannot reach Consul at {addr}" in out

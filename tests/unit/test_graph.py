"""The mesh graph: build_graph on real definitions, each output format, and `nomadmesh graph`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from nomadmesh.cli.main import cli
from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import Project, Service, Spec, Upstream
from nomadmesh.mesh.graph import Edge, Graph, Node, build_graph, to_dot, to_json, to_mermaid
from support.paths import SERVICES
from support.spec_builders import definition, write_services

SAMPLES = SERVICES
# The ingress gateway's listener is an edge like a declared upstream (gateway -> order on :8080).
SAMPLE_GRAPH = Graph(
    nodes=(Node("ingress", 8080), Node("invoice", 5001), Node("order", 5000), Node("tax", 5002)),
    edges=(Edge("ingress", "order", 8080), Edge("invoice", "tax", 6002), Edge("order", "invoice", 6001)),
)
# The printers' fixed input: the three services without the gateway.
CHAIN_GRAPH = Graph(
    nodes=(Node("invoice", 5001), Node("order", 5000), Node("tax", 5002)),
    edges=(Edge("invoice", "tax", 6002), Edge("order", "invoice", 6001)),
)


def test_build_graph_of_the_samples() -> None:
    assert build_graph(load_spec(SAMPLES)) == SAMPLE_GRAPH


def test_external_upstreams_become_external_nodes(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"web": definition("web", 80, {"payments": 9002, "db": 9001}),
                                         "db": definition("db", 5432)})  # fmt: skip
    graph = build_graph(load_spec(services, allow_external=["payments"]))
    assert graph == Graph(
        nodes=(Node("db", 5432), Node("web", 80), Node("payments", None, external=True)),
        edges=(Edge("web", "db", 9001), Edge("web", "payments", 9002)),
    )


def test_mermaid() -> None:
    assert to_mermaid(CHAIN_GRAPH) == (
        "flowchart LR\n"
        '    n0["invoice :5001"]\n'
        '    n1["order :5000"]\n'
        '    n2["tax :5002"]\n'
        '    n0 -->|"6002"| n2\n'
        '    n1 -->|"6001"| n0\n'
    )


def test_dot() -> None:
    assert to_dot(CHAIN_GRAPH) == (
        "digraph mesh {\n"
        "    rankdir=LR;\n"
        "    node [shape=box];\n"
        '    "invoice" [label="invoice :5001"];\n'
        '    "order" [label="order :5000"];\n'
        '    "tax" [label="tax :5002"];\n'
        '    "invoice" -> "tax" [label="6002"];\n'
        '    "order" -> "invoice" [label="6001"];\n'
        "}\n"
    )


def test_json() -> None:
    assert json.loads(to_json(CHAIN_GRAPH)) == {
        "services": [
            {"name": "invoice", "port": 5001, "external": False},
            {"name": "order", "port": 5000, "external": False},
            {"name": "tax", "port": 5002, "external": False},
        ],
        "edges": [
            {"source": "invoice", "destination": "tax", "local_bind_port": 6002},
            {"source": "order", "destination": "invoice", "local_bind_port": 6001},
        ],
    }


def test_verdicts_show_in_every_format() -> None:
    graph = CHAIN_GRAPH.with_verdicts({("invoice", "tax"): "deny", ("order", "invoice"): "allow"})
    assert [e.verdict for e in graph.edges] == ["deny", "allow"]
    assert '    n0 -.->|"6002 deny"| n2\n' in to_mermaid(graph)
    assert '    n1 -->|"6001 allow"| n0\n' in to_mermaid(graph)
    assert '"invoice" -> "tax" [label="6002 deny", style=dashed, color=red];' in to_dot(graph)
    assert json.loads(to_json(graph))["edges"][0]["verdict"] == "deny"


def test_hostile_names_cannot_break_out_of_labels() -> None:
    # load_spec never lets such names through, but the printers must not rely on that.
    evil = 'x"] --> n9["pwn\n'
    spec = Spec(Project(), (Service(evil, 1, "s.json", upstreams=(Upstream('y";\\', 2),)),))
    graph = build_graph(spec)
    mermaid = to_mermaid(graph)
    assert mermaid.splitlines()[1:] == [
        '    n0["x#34;#93; --#62; n9#91;#34;pwn#10; :1"]',
        '    n1(["y#34;#59;#92; (external)"])',
        '    n0 -->|"2"| n1',
    ]
    dot = to_dot(graph)
    assert '    "x\\"] --> n9[\\"pwn\\n" [label="x\\"] --> n9[\\"pwn\\n :1"];' in dot
    assert '    "x\\"] --> n9[\\"pwn\\n" -> "y\\";\\\\" [label="2"];' in dot
    assert json.loads(to_json(graph))["edges"][0]["source"] == evil


def test_graph_command(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES, tmp_path / "services")
    runner = CliRunner()
    for fmt, printer in (("mermaid", to_mermaid), ("dot", to_dot), ("json", to_json)):
        result = runner.invoke(cli, ["graph", "--services", str(tmp_path / "services"), "--format", fmt])
        assert (result.exit_code, result.stdout) == (0, printer(SAMPLE_GRAPH))
    default = runner.invoke(cli, ["graph", "--services", str(tmp_path / "services")])
    assert default.stdout == to_mermaid(SAMPLE_GRAPH)


def test_graph_command_on_invalid_definitions(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"a": definition("a", 5000, {"nope": 6001})})
    result = CliRunner().invoke(cli, ["graph", "--services", str(services)])
    assert result.exit_code == 2
    assert result.stdout == ""
    upstream = "service.connect.sidecar_service.proxy.upstreams[0].destination_name"
    assert f"a/service.json: {upstream}: 'nope' is not" in result.stderr
    assert "Traceback" not in result.output
    allowed = CliRunner().invoke(cli, ["graph", "--services", str(services), "--allow-external", "nope",
                                       "--format", "json"])
    assert json.loads(allowed.stdout)["services"][1] == {"name": "nope", "port": None, "external": True}

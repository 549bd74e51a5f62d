"""The mesh as a graph: services as nodes, upstreams as edges. Pure functions of a `Spec`.

`build_graph(spec)` makes the graph once; `to_mermaid`, `to_dot` and `to_json` only print it.
Upstreams to services outside the folder (allowed externals) become nodes marked external.
Each edge has an optional `verdict` ("allow"/"deny"), left empty here: a later step fills it
from intentions, and every format shows it when present.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from nomadmesh.definitions.model import Spec

FORMATS = ("mermaid", "dot", "json")


@dataclass(frozen=True)
class Node:
    name: str
    port: int | None = None  # None for external services
    external: bool = False


@dataclass(frozen=True)
class Edge:
    source: str
    destination: str
    local_bind_port: int
    verdict: str | None = None  # filled in from intentions later ("allow" / "deny")


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]  # defined services sorted by name, then externals sorted by name
    edges: tuple[Edge, ...]  # sorted by (source, destination, local_bind_port)

    def with_verdicts(self, verdicts: dict[tuple[str, str], str]) -> Graph:
        """A copy whose edges carry `verdicts[(source, destination)]` where given."""
        edges = tuple(replace(e, verdict=verdicts.get((e.source, e.destination), e.verdict)) for e in self.edges)
        return replace(self, edges=edges)


def build_graph(spec: Spec) -> Graph:
    defined = {s.name for s in spec.services}
    nodes = [Node(s.name, s.port) for s in sorted(spec.services, key=lambda s: s.name)]
    edges = sorted(
        (Edge(s.name, u.destination_name, u.local_bind_port) for s in spec.services for u in s.upstreams),
        key=lambda e: (e.source, e.destination, e.local_bind_port),
    )
    externals = sorted({e.destination for e in edges} - defined)
    return Graph(tuple(nodes + [Node(n, None, True) for n in externals]), tuple(edges))


def _label(node: Node) -> str:
    if node.external:
        return f"{node.name} (external)"
    return f"{node.name} :{node.port}" if node.port else f"{node.name} (no port)"


def _edge_label(edge: Edge) -> str:
    return f"{edge.local_bind_port} {edge.verdict}" if edge.verdict else str(edge.local_bind_port)


_MERMAID_SPECIAL = frozenset('"#<>&|[]{}`;\\\n\r')


def _mermaid_text(text: str) -> str:
    # Mermaid has no backslash escapes inside "...": quotes and markup characters become
    # entity codes, so a label can never close its own quotes or brackets.
    return "".join(f"#{ord(c)};" if c in _MERMAID_SPECIAL else c for c in text)


def to_mermaid(graph: Graph) -> str:
    # Node ids are positional (n0, n1, ...): always valid ids, whatever the names contain.
    ids = {n.name: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for n in graph.nodes:
        shape = ('(["', '"])') if n.external else ('["', '"]')
        lines.append(f"    {ids[n.name]}{shape[0]}{_mermaid_text(_label(n))}{shape[1]}")
    for e in graph.edges:
        arrow = "-.->" if e.verdict == "deny" else "-->"
        lines.append(f'    {ids[e.source]} {arrow}|"{_mermaid_text(_edge_label(e))}"| {ids[e.destination]}')
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def to_dot(graph: Graph) -> str:
    lines = ["digraph mesh {", "    rankdir=LR;", "    node [shape=box];"]
    for n in graph.nodes:
        style = ", style=dashed" if n.external else ""
        lines.append(f"    {_dot_string(n.name)} [label={_dot_string(_label(n))}{style}];")
    for e in graph.edges:
        style = ", style=dashed, color=red" if e.verdict == "deny" else ""
        lines.append(
            f"    {_dot_string(e.source)} -> {_dot_string(e.destination)} [label={_dot_string(_edge_label(e))}{style}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json(graph: Graph) -> str:
    doc = {
        "services": [{"name": n.name, "port": n.port, "external": n.external} for n in graph.nodes],
        "edges": [
            {"source": e.source, "destination": e.destination, "local_bind_port": e.local_bind_port}
            | ({"verdict": e.verdict} if e.verdict else {})
            for e in graph.edges
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"mermaid": to_mermaid, "dot": to_dot, "json": to_json}

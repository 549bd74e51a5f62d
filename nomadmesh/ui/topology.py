"""A layered left-to-right layout of the mesh for an SVG, computed in Python. Pure.

Services that call others sit left of what they call: each service's layer is the longest chain
of upstreams leading to it (edges that close a cycle are ignored for layering). A layer with more
than `MAX_PER_COLUMN` services wraps into several columns, so 50 services stay a readable grid
rather than a 50-row column. Within a column, services are ordered by the mean row of their
callers (one barycenter pass), which keeps most edges short and uncrossed.
"""
from __future__ import annotations

from dataclasses import dataclass

from nomadmesh.ui.model import Edge

NODE_W = 170
NODE_H = 36
GAP_X = 150  # room for an edge's two lines of figures between the columns
GAP_Y = 18
MARGIN = 24
MAX_PER_COLUMN = 12
MAX_LABEL = 20


@dataclass(frozen=True)
class NodeBox:
    name: str
    label: str
    x: int
    y: int
    health: str | None  # None: not registered (an upstream nobody runs)


@dataclass(frozen=True)
class EdgePath:
    edge: Edge
    d: str  # SVG path data
    label_x: int = 0  # the curve's midpoint, where its traffic figures are written
    label_y: int = 0


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    nodes: tuple[NodeBox, ...]
    edges: tuple[EdgePath, ...]


def _layers(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    succ: dict[str, list[str]] = {n: [] for n in names}
    for s, d in edges:
        if s != d:
            succ[s].append(d)
    # Depth-first search marks edges that go back to a node on the stack: those close cycles.
    state: dict[str, int] = {}
    forward: list[tuple[str, str]] = []
    for root in names:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                continue  # back edge
            else:
                forward.append((node, nxt))
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(succ[nxt])))
    layer = dict.fromkeys(names, 0)
    for _ in range(len(names)):  # longest path on a DAG: at most |V| relaxation rounds
        changed = False
        for s, d in forward:
            if layer[d] < layer[s] + 1:
                layer[d] = layer[s] + 1
                changed = True
        if not changed:
            break
    return layer


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def layout(services: dict[str, str], edges: list[Edge]) -> Layout:
    """Place `services` ({name: health}) and any edge endpoint not among them, and route `edges`."""
    names = sorted(set(services) | {e.source for e in edges} | {e.destination for e in edges})
    pairs = sorted({(e.source, e.destination) for e in edges})
    layer = _layers(names, pairs)
    preds: dict[str, list[str]] = {n: [] for n in names}
    for s, d in pairs:
        preds[d].append(s)
    row: dict[str, float] = {}
    col_of: dict[str, int] = {}
    column = 0
    for lay in range(max(layer.values(), default=-1) + 1):
        members = [n for n in names if layer[n] == lay]
        members.sort(key=lambda n: (sum(row[p] for p in preds[n] if p in row) / max(1, sum(p in row for p in preds[n]))
                                    if any(p in row for p in preds[n]) else -1, n))
        for i, n in enumerate(members):
            col_of[n] = column + i // MAX_PER_COLUMN
            row[n] = i % MAX_PER_COLUMN
        column += max(1, -(-len(members) // MAX_PER_COLUMN))
    pos = {n: (MARGIN + col_of[n] * (NODE_W + GAP_X), MARGIN + int(row[n]) * (NODE_H + GAP_Y)) for n in names}
    nodes = tuple(NodeBox(n, _label(n), *pos[n], services.get(n)) for n in names)
    paths = tuple(EdgePath(e, *_route(pos[e.source], pos[e.destination])) for e in edges)
    rows = max((int(r) for r in row.values()), default=0) + 1
    width = MARGIN * 2 + max(column, 1) * (NODE_W + GAP_X) - GAP_X
    height = MARGIN * 2 + rows * (NODE_H + GAP_Y) - GAP_Y
    return Layout(width, height, nodes, paths)


def _route(src: tuple[int, int], dst: tuple[int, int]) -> tuple[str, int, int]:
    """The cubic curve from `src`'s box to `dst`'s, and its midpoint (B(1/2) = (P0 + 3 P1 + 3 P2 + P3) / 8)."""
    (sx, sy), (dx, dy) = src, dst
    sy += NODE_H // 2
    dy += NODE_H // 2
    if dx > sx:  # forwards: right side to left side
        x1, x2 = sx + NODE_W, dx - 4
        mid = (x1 + x2) / 2
        return f"M{x1},{sy} C{mid:.0f},{sy} {mid:.0f},{dy} {x2},{dy}", round((x1 + x2) / 2), round((sy + dy) / 2)
    # Same column or backwards (a cycle or a wrapped layer): bow out to the left of both boxes.
    bow = max(4, min(sx, dx) - 30 - abs(sy - dy) // 8)
    return (f"M{sx},{sy} C{bow},{sy} {bow},{dy} {dx - 4},{dy}",
            round((sx + 6 * bow + dx - 4) / 8), round((sy + dy) / 2))

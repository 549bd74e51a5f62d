"""Rules that look at all service definitions together. Pure: parsed files in, problems out.

Per-file rules (types, ranges, unknown keys, drivers, ...) are checked while reading a file
(`parse.py`); here: duplicate names, upstreams naming services that are not defined, two
services publishing the same static host port, and upstream cycles (legal in a mesh, a warning).
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from nomadmesh.definitions.parse import Parsed
from nomadmesh.errors import Problem


def validate_mesh(
    parsed: Sequence[Parsed], external: Iterable[str], services_label: str, unreadable: Iterable[str] = ()
) -> list[Problem]:
    """Cross-file problems. `external`: upstream names allowed although not defined here;
    `unreadable`: folder names of files too broken to name their service (upstreams to these
    names are not reported: the file probably defines it, and its own error says what to fix).
    """
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for p in parsed:
        s = p.service
        if s is None:
            continue
        if s.name in first:
            problems.append(Problem(s.source, "service.name", f"{s.name!r} is also defined in {first[s.name]}"))
        else:
            first[s.name] = s.source
    problems += _undefined_upstreams(parsed, set(first), {*external, *unreadable}, services_label)
    problems += _published_twice(parsed)
    problems += _gateway_targets_outside_mesh(parsed)
    problems += [
        Problem(first[cycle[0]], "service.connect.sidecar_service.proxy.upstreams", _cycle_message(cycle), "warning")
        for cycle in upstream_cycles({p.service.name: [u.destination_name for u in p.service.upstreams]
                                      for p in parsed if p.service is not None})
    ]  # fmt: skip
    return problems


def _gateway_targets_outside_mesh(parsed: Sequence[Parsed]) -> list[Problem]:
    """An ingress gateway reaches services only through their sidecars: each must have one."""
    plain = {p.service.name for p in parsed if p.service is not None and not p.service.connect}
    return [Problem(p.service.source, path, f"{dest!r} has no Connect sidecar (service.connect): a gateway "
                    "reaches services only through the mesh")
            for p in parsed if p.service is not None and p.service.is_gateway
            for dest, path in p.references if dest in plain]


def _undefined_upstreams(parsed: Sequence[Parsed], defined: set[str], external: set[str], label: str) -> list[Problem]:
    problems = []
    names = sorted(defined)
    # A folder of a thousand services should not print a thousand names per problem.
    known = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "") or "none"
    for p in parsed:
        if p.service is None:
            continue
        for dest, path in p.references:
            if dest in defined or dest in external:
                continue
            close = difflib.get_close_matches(dest, sorted(defined), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(Problem(
                p.service.source, path,
                f"{dest!r} is not a service defined in {label} (defined: {known}); {hint}"
                f"if it runs outside this folder, pass --allow-external {dest} or list it in the "
                "project file's external_services",
            ))  # fmt: skip
    return problems


def _published_twice(parsed: Sequence[Parsed]) -> list[Problem]:
    problems = []
    owner: dict[int, str] = {}
    for p in parsed:
        s = p.service
        if s is None or not s.run.publish:  # None: not published; 0: dynamic, never collides
            continue
        if s.run.publish in owner:
            problems.append(Problem(
                s.source, "nomad.publish", f"host port {s.run.publish} is also published by {owner[s.run.publish]}"
            ))  # fmt: skip
        else:
            owner[s.run.publish] = s.source
    return problems


def _cycle_message(cycle: Sequence[str]) -> str:
    loop = " → ".join([*cycle, cycle[0]])
    return f"upstream cycle {loop} (legal in a mesh, but a request can go round it)"


def upstream_cycles(graph: Mapping[str, Iterable[str]]) -> list[tuple[str, ...]]:
    """One shortest cycle per strongly connected component, starting at its smallest name.

    Listing every elementary cycle can be exponential; one named cycle per tangle is enough to
    point the user at it. Self-loops are left out (an upstream to itself is an error already).
    """
    edges = {n: sorted({d for d in ds if d in graph and d != n}) for n, ds in graph.items()}
    cycles = []
    for component in _components(edges):
        if len(component) < 2:
            continue
        start = min(component)
        cycles.append(_shortest_loop(edges, start, set(component)))
    return sorted(cycles)


def _components(edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative so 10k-service chains cannot overflow."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = edges[node]
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def _shortest_loop(edges: Mapping[str, list[str]], start: str, within: set[str]) -> tuple[str, ...]:
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in edges[node]:
                if child not in within:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return tuple(reversed(path))
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError("a strongly connected component always has a loop")

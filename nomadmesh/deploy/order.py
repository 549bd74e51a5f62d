"""Deploy order: a service's upstreams before the service (tax, invoice, order). Pure.

Kahn's algorithm, taking ready services by name so the order is stable. A cycle cannot be
ordered: the smallest remaining name goes next and a warning names the services in the cycle.
Upstreams that are not among the services deployed (external ones) do not constrain the order.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence


def deploy_order(upstreams: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`{service: [upstream, ...]}` → (order, warnings)."""
    deps = {name: {u for u in ups if u in upstreams and u != name} for name, ups in upstreams.items()}
    order: list[str] = []
    warnings: list[str] = []
    remaining = dict(deps)
    while remaining:
        ready = sorted(n for n, d in remaining.items() if not d)
        if not ready:
            stuck = sorted(remaining)
            warnings.append(f"upstream cycle among {', '.join(stuck)}: deploying them in name order")
            ready = [stuck[0]]
        for name in ready[:1]:  # one at a time keeps name order among services freed together
            order.append(name)
            del remaining[name]
            for d in remaining.values():
                d.discard(name)
    return tuple(order), tuple(warnings)

"""The order deploy writes whole config entries in, so Consul never sees a discovery chain that
does not compile. Pure.

    entry_phases(changes) -> (before the jobs, after the jobs)
    take_safely(pending, state, change) -> the items that can go now, in a safe order (rollback uses it)

The preferred order writes service-defaults, then resolvers, splitters and routers, and deletes
the other way round after the jobs are healthy (as intentions). That is not always enough: a
resolver losing subset `v1` while the live splitter still sends to `v1` must wait until the
splitter is changed, or deleted after the jobs. So the changes are simulated on the live entries
(each change carries the entry it replaces) with Consul's rules (`chain_rules.chain_problem`: the
subsets, and the protocol where a service-defaults change is part of the plan):
each step takes the first change, in preferred order, that leaves every chain compiling. A write no
step can take before the jobs goes after them; what no order saves is left at the end, for Consul to
refuse with its own words.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from nomadmesh.mesh.chain_rules import CHAIN_KINDS, chain_problem
from nomadmesh.mesh.entry_plan import CHAIN_ORDER, EntryChange
from nomadmesh.mesh.policy import INTENTIONS, SERVICE_DEFAULTS

# Preferred write order (deletions: the reverse).
RANK = {kind: i for i, kind in enumerate((SERVICE_DEFAULTS, *CHAIN_ORDER))}
Entry = dict[str, Any]
State = dict[tuple[str, str], "Entry | None"]
T = TypeVar("T")


def _compiles(state: State) -> bool:
    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        return state.get((kind, name))

    def protocol(service: str) -> str:
        """The service-defaults protocol when the changes know it; else assumed fine (proxy-defaults
        may make it http: Consul decides)."""
        defaults = state.get((SERVICE_DEFAULTS, service))
        return str((defaults or {}).get("Protocol") or "http").lower()

    services = {name for (kind, name), entry in state.items() if entry is not None and kind in CHAIN_KINDS}
    return all(chain_problem(service, lookup, protocol) is None for service in services)


def take_safely(pending: list[T], state: State, change: Callable[[T], tuple[tuple[str, str], Entry | None]]
                ) -> list[T]:
    """Greedily the items of `pending` (in its order) that can be applied one by one, each leaving the
    chains of `state` compiling; they are removed from `pending` and applied to `state`. `change(item)`
    is ((kind, name), the entry after it; None for a deletion)."""
    taken: list[T] = []
    progress = True
    while progress:
        progress = False
        for item in pending:
            key, entry = change(item)
            after = {**state, key: entry}
            if _compiles(after) or not _compiles(state):
                state.update(after)
                pending.remove(item)
                taken.append(item)
                progress = True
                break
    return taken


def _effect(c: EntryChange) -> tuple[tuple[str, str], Entry | None]:
    return (c.kind, c.name), (None if c.action == "delete" else c.after)


def entry_phases(changes: Sequence[EntryChange]) -> tuple[list[EntryChange], list[EntryChange]]:
    """The whole-entry changes (service-defaults and chain entries) that write, split into what goes
    before the jobs and what goes after them, each in a safe order. Intentions are not included."""
    whole = [c for c in changes if c.kind != INTENTIONS]
    state: State = {(c.kind, c.name): c.before for c in whole}
    writes = sorted((c for c in whole if c.action in ("create", "update")), key=lambda c: (RANK[c.kind], c.name))
    deletes = sorted((c for c in whole if c.action == "delete"), key=lambda c: (-RANK[c.kind], c.name))
    before = take_safely(writes, state, _effect)
    pending = deletes + writes  # writes left over wait for the deletions after the jobs
    after = take_safely(pending, state, _effect)
    return before, after + pending

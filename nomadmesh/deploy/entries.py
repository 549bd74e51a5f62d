"""The I/O edge of the mesh policy: read the live config entries, write the planned changes, and
hold the project's deploy lock. (Pure parts: `nomadmesh.mesh.policy` and `nomadmesh.mesh.entry_plan`.)

    read_live(consul)                          -> (service-intentions by name, service-defaults by name)
    read_live_chain(consul)                    -> service-resolver/-splitter/-router by (kind, name)
    apply_entries(consul, changes, project)    -> [Applied]   one phase: writes, or deletes
    deploy_lock(consul, project)               -> context manager; DeployLocked if another deploy holds it

Every write is check-and-set on the entry's ModifyIndex (0 = must not exist yet) and is retried on
a fresh read (`retry_cas`): other sources and Meta keys in the entry, written by other tools in
between, are kept. A source that changed since the plan (someone ran `intent deny` meanwhile) is
left alone and reported, never overwritten on the strength of a stale plan.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import consul as consul_lib

from nomadmesh.deploy.consul_api import consul_errors
from nomadmesh.deploy.intentions import retry_cas
from nomadmesh.deploy.split_health import check_splits
from nomadmesh.errors import TargetError
from nomadmesh.mesh import intentions as ixn
from nomadmesh.mesh.chain_entries import same_entry
from nomadmesh.mesh.chain_order import entry_phases
from nomadmesh.mesh.entry_plan import CHAIN_ORDER, EntryChange, plan_entries
from nomadmesh.mesh.policy import (
    INTENTIONS,
    SERVICE_DEFAULTS,
    Desired,
    deploy_owner,
    mark,
    owner_of,
    same_source,
    unmark,
)

LOCK_PREFIX = "nomadmesh/deploy-lock/"
Entry = dict[str, Any]


@dataclass(frozen=True)
class Applied:
    change: EntryChange
    done: bool  # False: skipped, see note
    note: str = ""


class DeployLocked(TargetError):
    """Another deploy of the same project holds the lock."""


def read_live(consul: consul_lib.Consul) -> tuple[dict[str, Entry], dict[str, Entry]]:
    with consul_errors(consul):
        intentions = consul.config.list(INTENTIONS) or []
        defaults = consul.config.list(SERVICE_DEFAULTS) or []
    return {e["Name"]: e for e in intentions}, {e["Name"]: e for e in defaults}


def read_live_chain(consul: consul_lib.Consul) -> dict[tuple[str, str], Entry]:
    """Every service-resolver, -splitter and -router entry, by (kind, name)."""
    out = {}
    with consul_errors(consul):
        for kind in CHAIN_ORDER:
            out.update({(kind, e["Name"]): e for e in consul.config.list(kind) or []})
    return out


def live_entry_changes(consul: consul_lib.Consul, desired: Desired,
                       reset_overrides: bool = False) -> tuple[EntryChange, ...]:
    """The entry half of the plan: the project's desired entries against Consul's."""
    intentions, defaults = read_live(consul)
    return plan_entries(desired, intentions, defaults, reset_overrides, read_live_chain(consul))


def _writable(entry: Entry) -> Entry:
    out = {k: v for k, v in entry.items() if k not in ("CreateIndex", "ModifyIndex")}
    if out.get("Kind") == INTENTIONS:  # Precedence is computed by Consul, not written
        out["Sources"] = [{k: v for k, v in s.items() if k != "Precedence"} for s in out.get("Sources") or []]
    return out


def _cas(entry: Entry | None) -> int:
    return int(entry.get("ModifyIndex") or 0) if entry else 0


def apply_entries(consul: consul_lib.Consul, changes: Sequence[EntryChange], project: str,
                  done: Callable[[Applied], None] = lambda _: None) -> list[Applied]:
    """Write `changes` (only those that write): service-defaults and discovery-chain entries in an
    order Consul accepts (`nomadmesh.mesh.chain_order`), then one CAS write per intention destination.

    `done` hears of each write as soon as Consul accepted it, so Ctrl-C mid-way leaves a true account."""
    before, after = entry_phases(changes)
    return _apply(consul, before + after, [c for c in changes if c.writes and c.kind == INTENTIONS], project, done)


def _apply(consul: consul_lib.Consul, whole: Sequence[EntryChange], intentions: Sequence[EntryChange],
           project: str, done: Callable[[Applied], None]) -> list[Applied]:
    out: list[Applied] = []
    for change in whole:
        write = _service_defaults if change.kind == SERVICE_DEFAULTS else _chain_entry
        out.append(_named(change, lambda c=change, w=write: w(consul, c)))
        done(out[-1])
    by_dest: dict[str, list[EntryChange]] = {}
    for change in intentions:
        by_dest.setdefault(change.name, []).append(change)
    for dest, group in by_dest.items():
        results = _named(group[0], lambda d=dest, g=group: _intentions(consul, d, g, deploy_owner(project)))
        out += results
        for a in results:
            done(a)
    return out


def _named(change: EntryChange, write: Any) -> Any:
    """Run a write; a refusal (e.g. a token without intentions:write) names the entry it was for."""
    try:
        return write()
    except TargetError as e:
        raise TargetError(f"writing {change.kind}/{change.name}: {e}") from None


def _chain_entry(consul: consul_lib.Consul, change: EntryChange) -> Applied:
    """A service-resolver/-splitter/-router: whole, CAS on the ModifyIndex of the entry as it was planned."""
    def attempt() -> tuple[bool, Applied]:
        with consul_errors(consul):
            live = consul.config.get(change.kind, change.name)
        if not same_entry(live, change.before) or (live or {}).get("Meta") != (change.before or {}).get("Meta"):
            return True, Applied(change, False, "changed since the plan; left alone (plan again)")
        with consul_errors(consul):
            if change.action == "delete":
                ok = consul.config.delete(change.kind, change.name, cas=_cas(live))
            else:
                ok = consul.config.set(change.kind, change.name, change.after, cas=_cas(live))
        return bool(ok), Applied(change, True)

    return retry_cas(attempt, f"writing {change.kind}/{change.name}")


def _service_defaults(consul: consul_lib.Consul, change: EntryChange) -> Applied:
    def attempt() -> tuple[bool, Applied]:
        with consul_errors(consul):
            live = consul.config.get(SERVICE_DEFAULTS, change.name)
        seen = change.before
        if (live is None) != (seen is None) or (live or {}).get("Protocol") != (seen or {}).get("Protocol"):
            return True, Applied(change, False, "changed since the plan; left alone (plan again)")
        with consul_errors(consul):
            if change.action == "delete":
                ok = consul.config.delete(SERVICE_DEFAULTS, change.name, cas=_cas(live))
            else:
                ok = consul.config.set(SERVICE_DEFAULTS, change.name, change.after, cas=_cas(live))
        return bool(ok), Applied(change, True)

    return retry_cas(attempt, f"writing service-defaults/{change.name}")


def _intentions(consul: consul_lib.Consul, dest: str, group: list[EntryChange], owner: str) -> list[Applied]:
    def attempt() -> tuple[bool, list[Applied]]:
        with consul_errors(consul):
            live = consul.config.get(INTENTIONS, dest)
        entry: Entry | None = _writable(live) if live else None
        results = []
        for change in group:
            current = next((s for s in (entry or {}).get("Sources") or [] if s.get("Name") == change.source), None)
            if not (owner_of(entry, change.source or "") == owner or same_source(current, change.before)):
                results.append(Applied(change, False, f"changed since the plan by "
                                       f"{owner_of(entry, change.source or '') or 'someone else'}; left alone"))
                continue
            if change.action == "delete":
                entry = ixn.remove_source(entry, change.source or "") if entry else None
                if entry is not None:
                    entry, _, _ = unmark(entry, change.source or "")
            else:
                entry = mark(ixn.upsert_source(entry, dest, dict(change.after or {})), change.source or "", owner)
            results.append(Applied(change, True))
        if not any(r.done for r in results):
            return True, results
        with consul_errors(consul):
            if entry is None:
                ok = consul.config.delete(INTENTIONS, dest, cas=_cas(live))
            else:
                ok = consul.config.set(INTENTIONS, dest, entry, cas=_cas(live))
        return bool(ok), results

    result: list[Applied] = retry_cas(attempt, f"writing service-intentions/{dest}")
    return result


# --- the deploy lock ----------------------------------------------------------------------------


def _holder() -> dict[str, Any]:
    return {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(), "since": int(time.time())}


def _dead_here(holder: dict[str, Any]) -> bool:
    """The holder is a process on this machine that no longer runs (a deploy killed with -9)."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OSError):
        return False
    return False


@contextmanager
def deploy_lock(consul: consul_lib.Consul, project: str) -> Iterator[None]:
    """One deploy per project at a time: a Consul KV key created with cas=0 (only one writer can).

    A second deploy fails before it writes anything. A lock left by a process that died on this
    machine is taken over (CAS on its index); one left from another machine names its holder.
    """
    key = f"{LOCK_PREFIX}{project}"
    me = json.dumps(_holder())
    with consul_errors(consul):
        ok = consul.kv.put(key, me, cas=0)
        if not ok:
            _, held = consul.kv.get(key)
            holder = json.loads((held or {}).get("Value") or b"{}") if held else {}
            if held is None or not _dead_here(holder) or not consul.kv.put(key, me, cas=held["ModifyIndex"]):
                since = time.strftime("%H:%M:%S", time.localtime(holder.get("since", 0)))
                raise DeployLocked(
                    f"another deploy of project {project!r} is running ({holder.get('user')}@{holder.get('host')} "
                    f"pid {holder.get('pid')}, since {since}); nothing was changed. "
                    f"If it is gone, delete the Consul KV key {key}")
    try:
        yield
    finally:
        with consul_errors(consul):
            _, held = consul.kv.get(key)
            if held is not None and (held.get("Value") or b"").decode() == me:
                consul.kv.delete(key, cas=held["ModifyIndex"])


class EntryWriter:
    """What `apply` calls around the jobs: `write` before registering, `delete` after they are healthy."""

    def __init__(self, consul: consul_lib.Consul, project: str) -> None:
        self.consul, self.project = consul, project

    def write(self, changes: Sequence[EntryChange], progress: Any) -> list[Applied]:
        check_splits(self.consul, changes)  # Consul 10857: no split to an empty subset; raises before any write
        before, _ = entry_phases(changes)
        return self._phase(before, [c for c in changes if c.kind == INTENTIONS and c.action in ("create", "update")],
                           progress)

    def delete(self, changes: Sequence[EntryChange], progress: Any) -> list[Applied]:
        """Deletions, and the whole-entry writes that had to wait for them (a resolver losing a subset
        the splitter being removed still named)."""
        _, after = entry_phases(changes)
        return self._phase(after, [c for c in changes if c.kind == INTENTIONS and c.action == "delete"], progress)

    def _phase(self, whole: list[EntryChange], intentions: list[EntryChange], progress: Any) -> list[Applied]:
        def done(a: Applied) -> None:
            verb = {"create": "wrote", "update": "updated", "delete": "removed"}[a.change.action]
            progress.note(f"{a.change.label}: {verb}" if a.done else f"{a.change.label}: {a.note}")

        return _apply(self.consul, whole, intentions, self.project, done) if whole or intentions else []

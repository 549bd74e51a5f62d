"""Intentions on any Consul (the dev agent or a real cluster), as `service-intentions` config entries.

The I/O edge of `nomadmesh.mesh.intentions` (which holds the pure precedence and evaluation):

    set_intention(consul, "invoice", "tax", "deny")      -> Change ("created" / "updated" / "unchanged")
    set_intention(consul, "web", "api", None, permissions=(Permission(...),))   -> an L7 source
    delete_intention(consul, "invoice", "tax")           -> bool (False: there was nothing to delete)
    list_intentions(consul)                              -> [Intention], highest precedence first
    load_default_policy(consul, override=None)           -> DefaultPolicy
    check_intention(consul, "invoice", "tax", policy)    -> Decision (allowed, deciding rule)

Writes are read-modify-write of the destination's whole entry: `config.get`, change our one
source, `config.set(..., cas=ModifyIndex or 0)`. Consul refuses the write if anyone wrote the entry
in between (or created it, with cas=0), and we read again and retry after a jittered back-off, so
concurrent writers (other `nomadmesh intent` processes, the web UI, Terraform, the Consul CLI) never
lose each other's sources. Every source and field we did not change is written back as read:
Meta, other tools' sources, LegacyID, fields this module does not model. A write never silently
turns an L7 source into a plain one or the reverse: that needs `replace=True` (ReplaceRefused
otherwise, nothing written).

This is a library (the CLI and the web UI both use it): it prints nothing and raises only
`TargetError` (a `NomadMeshError`), whose message names the Consul address.
"""
from __future__ import annotations

import getpass
import random
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import consul as consul_lib

from nomadmesh.deploy.consul_api import consul_address as _address, consul_errors
from nomadmesh.errors import TargetError
from nomadmesh.mesh import intentions as ixn, policy
from nomadmesh.mesh.intentions import Decision, Intention, Permission

T = TypeVar("T")

# Bounded retries: with full jitter, 20 concurrent writers on one entry settle well within this.
CAS_ATTEMPTS = 60
BACKOFF_BASE_S = 0.01
BACKOFF_CAP_S = 0.4

# Source fields that describe what the intention does; everything else on a source we replace is kept.
_DECISION_FIELDS = ("Action", "Permissions", "Precedence")


@dataclass(frozen=True)
class Change:
    """What `set_intention` did: "created", "updated" or "unchanged"."""

    kind: str
    intention: Intention
    previous: Intention | None = None


@dataclass(frozen=True)
class DefaultPolicy:
    """The policy that decides a pair no intention matches, and how we know it.

    `source` is "option" (the caller said so) or "consul" (Consul's own /check answered it).
    """

    allow: bool
    source: str

    @property
    def name(self) -> str:
        return "allow" if self.allow else "deny"


# --- CAS loop -----------------------------------------------------------------------------------


def retry_cas(
    attempt: Callable[[], tuple[bool, T]],
    what: str,
    attempts: int = CAS_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Run `attempt` until it reports success; full-jitter exponential back-off in between.

    `attempt` returns (done, value). Jitter matters: writers that lost the same race must not
    retry in lockstep, or they lose it again together.
    """
    for n in range(attempts):
        done, value = attempt()
        if done:
            return value
        sleep(rand() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** n))
    raise TargetError(f"{what}: gave up after {attempts} attempts, the entry kept changing underneath")


# --- reads --------------------------------------------------------------------------------------


def _get_entry(consul: consul_lib.Consul, destination: str) -> dict[str, Any] | None:
    with consul_errors(consul):
        entry = consul.config.get(ixn.KIND, destination)
    if entry is not None and not isinstance(entry, dict):
        raise TargetError(f"Consul at {_address(consul)}: {ixn.KIND}/{destination} is not an object")
    return entry


def _parse(consul: consul_lib.Consul, entry: dict[str, Any]) -> list[Intention]:
    try:
        return ixn.from_config_entry(entry)
    except ixn.IntentionError as e:
        name = entry.get("Name")
        raise TargetError(f"Consul at {_address(consul)}: {ixn.KIND}/{name}: {e}") from None


def list_intentions(consul: consul_lib.Consul) -> list[Intention]:
    """Every intention Consul holds, highest precedence first (Consul's evaluation order)."""
    with consul_errors(consul):
        entries = consul.config.list(ixn.KIND) or []
    return ixn.sort_by_precedence(i for entry in entries for i in _parse(consul, entry))


def get_intention(consul: consul_lib.Consul, source: str, destination: str) -> Intention | None:
    entry = _get_entry(consul, destination)
    if entry is None:
        return None
    return next((i for i in _parse(consul, entry) if i.source == source), None)


# --- writes -------------------------------------------------------------------------------------


class ChangedMeanwhile(TargetError):
    """The intention is no longer what the caller read (someone else wrote it in between): nothing written."""


_ANY = object()  # `expected` not given: write whatever the intention is now


class ReplaceRefused(TargetError):
    """The write would turn an L7 source into a plain allow/deny (or the reverse) and replace was not asked."""

    def __init__(self, previous: Intention, wanted: Intention) -> None:
        self.previous, self.wanted = previous, wanted
        super().__init__(f"{previous.source} => {previous.destination} has {describe(previous)}; writing "
                         f"{describe(wanted)} would replace it (nothing written)")


def _merged_source(old: dict[str, Any] | None, source: str, action: str | None,
                   permissions: tuple[Permission, ...], description: str | None) -> dict[str, Any]:
    """The new source: the old one's other fields kept, its decision replaced."""
    out = {k: v for k, v in (old or {}).items() if k not in _DECISION_FIELDS}
    out["Name"] = source
    out.setdefault("Type", "consul")
    if permissions:
        out["Permissions"] = ixn.permissions_to_json(permissions)
    else:
        out["Action"] = action
    if description is not None:
        if description:
            out["Description"] = description
        else:
            out.pop("Description", None)
    return out


def describe(intention: Intention) -> str:
    """`allow`, or the L7 permissions one after the other: what a source decides, for messages."""
    if not intention.is_l7:
        return str(intention.action)
    return "L7 permissions: " + "; ".join(ixn.permission_text(p) for p in intention.permissions)


def set_intention(
    consul: consul_lib.Consul, source: str, destination: str, action: str | None, description: str | None = None,
    permissions: Sequence[Permission] = (), replace: bool = False, written_by: str | None = None,
    expected: Intention | object | None = _ANY,
) -> Change:
    """Make `source => destination` an L4 `action` ("allow"/"deny"), or, with `permissions` (and
    action None), an L7 source whose HTTP permissions decide per request.

    `description=None` keeps the current description; "" clears it. Turning an L7 source into a
    plain action, or a plain one into L7, replaces a different kind of rule: refused with
    ReplaceRefused (nothing written) unless `replace` (like `consul intention create -replace`).
    Permissions of the same kind are simply replaced: that is what the caller asked for.
    In an entry a deploy manages, the source is marked as written by `written_by` (default: this
    user@host), so the next deploy shows it as an override and keeps it.
    With `expected` (an Intention, or None for "there is none"), the write happens only while the
    intention is still that one, checked inside the check-and-set loop: an edit computed from what
    the caller read (the UI's "add an L7 rule") never overwrites a change made meanwhile.
    """
    perms = tuple(permissions)
    if perms and action is not None:
        raise ValueError("give either an action or permissions, not both")
    if not perms and action not in ixn.ACTIONS:
        raise ValueError(f"action must be allow or deny, not {action!r}")

    def attempt() -> tuple[bool, Change]:
        entry = _get_entry(consul, destination)
        sources = (entry or {}).get("Sources") or []
        old = next((s for s in sources if s.get("Name") == source), None)
        previous = next((i for i in _parse(consul, entry) if i.source == source), None) if old and entry else None
        if expected is not _ANY and previous != expected:
            raise ChangedMeanwhile(f"{source} => {destination} changed since it was read (now "
                                   f"{describe(previous) if previous else 'absent'}); nothing written")
        new_source = _merged_source(old, source, action, perms, description)
        intention = Intention(source, destination, None if perms else action, perms,
                              description=new_source.get("Description", ""))
        if previous == intention:
            return True, Change("unchanged", intention, previous)
        if previous is not None and previous.is_l7 != intention.is_l7 and not replace:
            raise ReplaceRefused(previous, intention)
        base = _writable(entry) if entry is not None else None
        if base is not None and policy.has_marks(base):
            # In an entry a deploy manages, say who wrote this source (deploy then keeps it, an override),
            # marked before the source is replaced so that a deploy's source it replaces is saved.
            base = policy.mark(base, source, written_by or operator())
        new_entry = ixn.upsert_source(base, destination, new_source)
        with consul_errors(consul):
            ok = consul.config.set(ixn.KIND, destination, new_entry, cas=_cas(entry))
        return bool(ok), Change("updated" if previous else "created", intention, previous)

    return retry_cas(attempt, f"writing {source} => {destination}")


def delete_intention(consul: consul_lib.Consul, source: str, destination: str) -> bool:
    """Remove `source` from the destination's entry (the entry goes when no source is left).

    False when there was no such intention.
    """

    def attempt() -> tuple[bool, bool]:
        entry = _get_entry(consul, destination)
        if entry is None or not any(s.get("Name") == source for s in entry.get("Sources") or []):
            return True, False
        # A source the operator wrote over a deploy's own gives the deploy's back (see mesh/policy.py).
        unmarked, saved, saved_owner = policy.unmark(_writable(entry), source)
        remaining = ixn.remove_source(unmarked, source)
        if saved is not None:
            remaining = policy.mark(ixn.upsert_source(remaining, destination, saved), source, saved_owner)
        with consul_errors(consul):
            if remaining is None:
                ok = consul.config.delete(ixn.KIND, destination, cas=_cas(entry))
            else:
                ok = consul.config.set(ixn.KIND, destination, remaining, cas=_cas(entry))
        return bool(ok), True

    return retry_cas(attempt, f"deleting {source} => {destination}")


def operator() -> str:
    """Who `nomadmesh intent` writes as, in the entry's Meta: `intent:<user>@<host>`."""
    return f"intent:{getpass.getuser()}@{socket.gethostname()}"


def _cas(entry: dict[str, Any] | None) -> int:
    # cas=0 means "only if it does not exist yet": two writers creating the entry cannot both win.
    return int(entry.get("ModifyIndex") or 0) if entry else 0


def _writable(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as read, minus the indexes Consul sets itself (the CAS index goes in the query)."""
    return {k: v for k, v in entry.items() if k not in ("CreateIndex", "ModifyIndex")}


# --- decisions ----------------------------------------------------------------------------------


def load_default_policy(consul: consul_lib.Consul, override: str | None = None) -> DefaultPolicy:
    """The default intention policy of the target.

    Consul has no endpoint for it (it is the ACL default_policy, or allow when ACLs are off, and
    reading the agent's config needs agent:read). So unless the caller says (`override`), we ask
    Consul's own /v1/connect/intentions/check about two names nobody uses: no exact or half-wildcard
    intention can match them, so the answer is the default policy, unless a `* => *` intention
    exists, in which case the default policy never decides anything and any answer is right.
    """
    if override is not None:
        if override not in ixn.ACTIONS:
            raise ValueError(f"default policy must be allow or deny, not {override!r}")
        return DefaultPolicy(override == "allow", "option")
    probe = f"nomadmesh-probe-{uuid.uuid4().hex}"
    with consul_errors(consul):
        allowed = consul.connect.intentions.check(f"{probe}-src", f"{probe}-dst")
    return DefaultPolicy(bool(allowed), "consul")


def check_intention(
    consul: consul_lib.Consul, source: str, destination: str, policy: DefaultPolicy | None = None
) -> Decision:
    """Would Consul let `source` call `destination`, and which rule decides (like `consul intention check`)."""
    policy = policy or load_default_policy(consul)
    return ixn.evaluate(source, destination, list_intentions(consul), policy.allow)


def registered_services(consul: consul_lib.Consul) -> set[str]:
    """Names in Consul's catalog (to warn about intentions naming a service that does not exist)."""
    with consul_errors(consul):
        _, services = consul.catalog.services()
    return set(services or {})

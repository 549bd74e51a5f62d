"""Desired entries vs live entries → the changes deploy would make. Pure.

    plan_entries(desired, live_intentions, live_defaults, reset_overrides=False) -> (EntryChange, ...)

Per intention source (destination, source), per service-defaults entry and per service-resolver,
-splitter and -router entry (service.json `traffic`):

    create     nothing live: write ours
    update     ours, but different (or someone else's and --reset-overrides asked to take it back)
    delete     ours, and nothing in the definitions wants it any more (applied after the jobs);
               only in a named project: unnamed ones all share the owner "deploy:default", so
               an allow no longer declared here may be another unnamed project's
    override   someone else's source decides differently: left alone, shown with who wrote it
    held       a running `nomadmesh release` marked the entry (Meta nomadmesh-release): left alone
    noop       already as wanted (ours, or someone else's deciding the same)

Only sources marked as ours (see `nomadmesh.mesh.policy`) are ever updated or deleted.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nomadmesh.definitions.project import is_named
from nomadmesh.mesh.chain_entries import same_entry
from nomadmesh.mesh.chain_rules import RESOLVER, ROUTER, SPLITTER
from nomadmesh.mesh.policy import (
    INTENTIONS,
    RELEASE_KEY,
    SERVICE_DEFAULTS,
    Desired,
    owner_of,
    owns_defaults,
    same_decision,
    same_source,
)

# The order deploy writes discovery-chain entries in (deletes go the other way): a splitter or router
# names subsets, which the resolver must define first.
CHAIN_ORDER = (RESOLVER, SPLITTER, ROUTER)
EntryAction = Literal["create", "update", "delete", "override", "held", "noop"]
Entry = dict[str, Any]


@dataclass(frozen=True)
class EntryChange:
    kind: str  # service-intentions | service-defaults
    name: str  # the destination (intentions) or the service (service-defaults)
    source: str | None  # the intention source; None for service-defaults
    action: EntryAction
    before: Entry | None = None  # the live source / entry
    after: Entry | None = None  # what deploy writes (None for delete/override/noop-by-others)
    owner: str = ""  # who wrote the live one ("" = not nomadmesh: Consul CLI, Terraform, the UI...)
    reason: str = ""

    @property
    def writes(self) -> bool:
        return self.action in ("create", "update", "delete")

    @property
    def label(self) -> str:
        if self.kind == INTENTIONS:
            return f"intention {self.source} => {self.name}"
        return f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "source": self.source, "action": self.action,
                "before": self.before, "after": self.after, "written_by": self.owner or None,
                "reason": self.reason}


def _sources(entry: Entry | None) -> dict[str, Entry]:
    return {s.get("Name", ""): s for s in (entry or {}).get("Sources") or []}


def _why(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _written_by(owner: str) -> str:
    return owner or "someone else (no nomadmesh mark)"


def plan_entries(desired: Desired, live_intentions: Mapping[str, Entry], live_defaults: Mapping[str, Entry],
                 reset_overrides: bool = False,
                 live_chain: Mapping[tuple[str, str], Entry] | None = None) -> tuple[EntryChange, ...]:
    """The changes, service-defaults first (Consul checks L7 intentions and routes against the
    protocol), then the discovery-chain entries (resolver, splitter, router: Consul checks the subsets
    a split names against the resolver), then intentions by destination and source: a stable order
    for the report and for apply (which deletes in the reverse order of kinds)."""
    ours = desired.owner
    prunes = is_named(desired.project)
    changes: list[EntryChange] = []
    for name in sorted({*desired.service_defaults, *live_defaults}):
        want, have = desired.service_defaults.get(name), live_defaults.get(name)
        mine = owns_defaults(have, desired.project)
        if want is None:
            if have is not None and mine and prunes:
                changes.append(EntryChange(SERVICE_DEFAULTS, name, None, "delete", have, None, ours,
                                           "no definition declares its protocol any more"))
            continue
        reason = f"protocol {want['Protocol']}"
        if have is None:
            changes.append(EntryChange(SERVICE_DEFAULTS, name, None, "create", None, want, "", reason))
        elif (have.get("Protocol") or "tcp") == want["Protocol"] and (mine or not reset_overrides):
            changes.append(EntryChange(SERVICE_DEFAULTS, name, None, "noop", have, None,
                                       ours if mine else _written_by(""), reason))
        elif mine or reset_overrides:
            kept = {k: v for k, v in have.items() if k not in ("CreateIndex", "ModifyIndex")}  # set by Consul
            changes.append(EntryChange(SERVICE_DEFAULTS, name, None, "update", have, {**kept, **want},
                                       ours if mine else _written_by(""), reason))
        else:
            changes.append(EntryChange(SERVICE_DEFAULTS, name, None, "override", have, None, _written_by(""),
                                       f"{reason} wanted; the live entry is not nomadmesh's "
                                       "(--reset-overrides replaces it)"))
    changes += _plan_chain(desired, live_chain or {}, reset_overrides)
    for dest in sorted({d for d, _ in desired.sources} | set(live_intentions)):
        entry = live_intentions.get(dest)
        live = _sources(entry)
        wanted = {s: src for (d, s), src in desired.sources.items() if d == dest}
        for source in sorted(set(wanted) | set(live)):
            want, have, owner = wanted.get(source), live.get(source), owner_of(entry, source)
            reason = desired.reasons.get((dest, source), "")
            if want is None:
                if have is not None and owner == ours and prunes:
                    changes.append(EntryChange(INTENTIONS, dest, source, "delete", have, None, owner,
                                               "no definition declares it any more"))
                continue
            if have is None:
                changes.append(EntryChange(INTENTIONS, dest, source, "create", None, want, "", reason))
            elif owner == ours:
                action: EntryAction = "noop" if same_source(have, want) else "update"
                changes.append(EntryChange(INTENTIONS, dest, source, action, have,
                                           want if action == "update" else None, owner, reason))
            elif same_decision(have, want):
                changes.append(EntryChange(INTENTIONS, dest, source, "noop", have, None, _written_by(owner), reason))
            elif reset_overrides:
                changes.append(EntryChange(INTENTIONS, dest, source, "update", have, want, _written_by(owner),
                                           _why(reason, "resetting the override")))
            else:
                changes.append(EntryChange(INTENTIONS, dest, source, "override", have, None, _written_by(owner),
                                           _why(reason, "kept; --reset-overrides puts the declared rule back")))
    return tuple(changes)


def _plan_chain(desired: Desired, live: Mapping[tuple[str, str], Entry], reset_overrides: bool) -> list[EntryChange]:
    """service-resolver, -splitter and -router entries: whole entries owned like service-defaults.
    One that a running release marked (`nomadmesh-release`) is left alone and shown as held."""
    ours, prunes = desired.owner, is_named(desired.project)
    changes = []
    services = {n for _, n in desired.chain} | set(desired.service_defaults) | {n for pair in desired.sources
                                                                                 for n in pair}
    keys = {*desired.chain, *(k for k, e in live.items() if owns_defaults(e, desired.project)
                              or (k[1] in services and RELEASE_KEY in (e.get("Meta") or {})))}
    for kind, name in sorted(keys, key=lambda k: (CHAIN_ORDER.index(k[0]), k[1])):
        want, have = desired.chain.get((kind, name)), live.get((kind, name))
        mine = owns_defaults(have, desired.project)
        release = str(((have or {}).get("Meta") or {}).get(RELEASE_KEY, ""))
        if release:
            changes.append(EntryChange(kind, name, None, "held", have, None, f"release:{release}",
                                       f"release {release} is running; left alone until it ends"))
        elif want is None:
            if have is not None and mine and prunes:
                changes.append(EntryChange(kind, name, None, "delete", have, None, ours,
                                           "no definition declares it any more"))
        elif have is None:
            changes.append(EntryChange(kind, name, None, "create", None, want, "", "service.json traffic"))
        elif same_entry(have, want) and (mine or not reset_overrides):
            changes.append(EntryChange(kind, name, None, "noop", have, None, ours if mine else _written_by(""),
                                       "service.json traffic"))
        elif mine or reset_overrides:
            changes.append(EntryChange(kind, name, None, "update", have, want, ours if mine else _written_by(""),
                                       "service.json traffic changed" if mine else "resetting the override"))
        else:
            changes.append(EntryChange(kind, name, None, "override", have, None, _written_by(""),
                                       "service.json traffic wants another; the live entry is not nomadmesh's "
                                       "(--reset-overrides replaces it)"))
    return changes


def describe_chain(entry: Entry | None) -> str:
    """A resolver, splitter or router in one line: `subsets v1, v2 (default v1)`, `v1 90%, v2 10%`,
    `/admin -> v2; GET /api -> billing`."""
    if entry is None:
        return "-"
    if entry.get("Kind") == RESOLVER:
        subsets = ", ".join(sorted(entry.get("Subsets") or {})) or "none"
        default = entry.get("DefaultSubset")
        return f"subsets {subsets}" + (f" (default {default})" if default else "")
    if entry.get("Kind") == SPLITTER:
        return ", ".join(f"{s.get('ServiceSubset') or s.get('Service') or entry.get('Name')} {s.get('Weight')}%"
                         for s in entry.get("Splits") or [])
    parts = []
    for route in entry.get("Routes") or []:
        http = (route.get("Match") or {}).get("HTTP") or {}
        dest = route.get("Destination") or {}
        path = http.get("PathExact") or http.get("PathPrefix") or (f"~{http['PathRegex']}" if http.get("PathRegex")
                                                                   else "*")
        where = "/".join(x for x in (dest.get("Service"), dest.get("ServiceSubset")) if x) or "default"
        parts.append(" ".join(x for x in (",".join(http.get("Methods") or []), path) if x) + f" -> {where}")
    return "; ".join(parts) or "no routes"


def describe(source: Entry | None) -> str:
    """`allow`, `deny`, or the L7 permissions in one line (`L7: allow GET /api/*, deny *`)."""
    if source is None:
        return "-"
    perms = source.get("Permissions") or []
    if not perms:
        return str(source.get("Action", "?"))
    parts = []
    for p in perms:
        http = p.get("HTTP") or {}
        path = http.get("PathExact") or http.get("PathPrefix") or (f"~{http['PathRegex']}" if http.get("PathRegex")
                                                                   else "")
        methods = ",".join(http.get("Methods") or [])
        headers = ",".join(h.get("Name", "") for h in http.get("Header") or [])
        what = " ".join(x for x in (methods, path, f"[{headers}]" if headers else "") if x) or "*"
        parts.append(f"{p.get('Action')} {what}")
    return "L7: " + "; ".join(parts)


_MARKS = {"create": "+", "update": "~", "delete": "-", "override": "!", "held": "="}


def format_entries(changes: Iterable[EntryChange]) -> list[str]:
    """The report lines of the entry changes that do something (or are overrides): one per change."""
    lines = []
    for c in changes:
        if c.action == "noop":
            continue
        if c.kind == SERVICE_DEFAULTS:
            what = f"protocol {(c.before or {}).get('Protocol') or 'tcp'} -> {(c.after or {}).get('Protocol') or '-'}" \
                if c.action in ("update", "override") and c.after else c.reason
        elif c.kind in CHAIN_ORDER:
            what = {"create": f"{describe_chain(c.after)} ({c.reason})",
                    "update": f"{describe_chain(c.before)} -> {describe_chain(c.after)} ({c.reason})",
                    "delete": f"{describe_chain(c.before)} ({c.reason})",
                    "held": f"{describe_chain(c.before)} ({c.reason})"}.get(
                        c.action, f"{describe_chain(c.before)}, written by {c.owner} ({c.reason})")
        elif c.action == "create":
            what = f"{describe(c.after)} ({c.reason})"
        elif c.action == "update":
            what = f"{describe(c.before)} -> {describe(c.after)} ({c.reason})"
        elif c.action == "delete":
            what = f"{describe(c.before)} ({c.reason})"
        else:
            what = f"{describe(c.before)}, written by {c.owner} ({c.reason})"
        verb = {"create": "add", "update": "change", "delete": "remove", "override": "override",
                "held": "held by a release:"}[c.action]
        lines.append(f"{_MARKS[c.action]} {c.label}: {verb} {what}")
    return lines

"""The mesh policy a project declares: which Consul config entries it owns and what they should hold. Pure.

    desired_policy(spec) -> Desired

* one `allow` per declared upstream (`order` lists `invoice` → `order => invoice: allow`), upstreams
  to `external_services` included, unless nomadmesh.json says `"derive_intentions": false`;
* nomadmesh.json `intentions` rules on top (a rule for a pair we also derive replaces the allow);
* a `service-defaults` entry {Kind, Name, Protocol} for every service that declares
  `connect.sidecar_service.proxy.config.protocol`.

Ownership. Consul's intention sources have no Meta of their own (SourceIntention has only the
legacy API's LegacyMeta, which config-entry writes must omit), so who wrote a source is kept in
the destination entry's Meta, one key per source:

    "nomadmesh-source-<source>": "deploy:<project>"    written by `deploy` of that project
    "nomadmesh-source-<source>": "intent:<user>@<host>" written by `nomadmesh intent` in an entry
                                                        that already has marks (one a deploy manages)

When `intent` replaces a source that `deploy` owns, the replaced source is saved beside it
(`nomadmesh-saved-<source>`, its JSON) so that `intent delete` puts the derived rule back instead of
leaving the pair to the default policy. A source without an owner key was written by someone else
(Consul CLI, Terraform, the UI) and is never changed unless the user asks (`--reset-overrides`).
A service-defaults entry is ours when its Meta has `nomadmesh-managed = "true"` and
`nomadmesh-project = <project>`; so are the service-resolver / service-splitter / service-router
entries made from service.json `traffic` (`nomadmesh.mesh.chain_entries`). An entry whose Meta has
`nomadmesh-release` belongs to a running release for now and is left alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nomadmesh.definitions.model import Spec
from nomadmesh.errors import Problem
from nomadmesh.mesh.chain_entries import chain_entries, traffic_problems
from nomadmesh.mesh.intention_rules import InvalidIntentions, validate
from nomadmesh.mesh.intentions import IntentionError, from_config_entry
from nomadmesh.mesh.release_marks import RELEASE_KEY  # noqa: F401 (a running release's entries: deploy and plan leave them alone)

INTENTIONS = "service-intentions"
SERVICE_DEFAULTS = "service-defaults"
MANAGED_KEY = "nomadmesh-managed"
PROJECT_KEY = "nomadmesh-project"
SOURCE_KEY = "nomadmesh-source-"
SAVED_KEY = "nomadmesh-saved-"
MAX_META_VALUE = 512  # Consul's limit on a config entry Meta value


@dataclass(frozen=True)
class Desired:
    """What this project's entries should hold. Keys of `sources` are (destination, source)."""

    project: str
    sources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # Consul source JSON
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)  # why: "upstream of order"
    service_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> whole entry
    # service-resolver / service-splitter / service-router entries from service.json `traffic`
    chain: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, name) -> whole entry

    @property
    def owner(self) -> str:
        return deploy_owner(self.project)


def deploy_owner(project: str) -> str:
    return f"deploy:{project}"


def source_key(source: str) -> str:
    return f"{SOURCE_KEY}{source}"


def desired_policy(spec: Spec) -> Desired:
    project = spec.project
    desired = Desired(project.name)
    if project.derive_intentions:
        for service in spec.services:
            for up in service.upstreams:
                key = (up.destination_name, service.name)
                desired.sources[key] = {"Name": service.name, "Type": "consul", "Action": "allow",
                                        "Description": f"nomadmesh: {service.name} declares {up.destination_name} "
                                                       "as an upstream"}
                desired.reasons[key] = f"upstream of {service.name}"
    for rule in project.intentions:
        key = (rule.destination, rule.source)
        src: dict[str, Any] = {"Name": rule.source, "Type": "consul"}
        if rule.permissions:
            src["Permissions"] = json.loads(rule.permissions)
        else:
            src["Action"] = rule.action
        if rule.description:
            src["Description"] = rule.description
        desired.sources[key] = src
        desired.reasons[key] = f"nomadmesh.json {rule.where}"
    for service in spec.services:
        if service.protocol:
            desired.service_defaults[service.name] = {
                "Kind": SERVICE_DEFAULTS, "Name": service.name, "Protocol": service.protocol,
                "Meta": {MANAGED_KEY: "true", PROJECT_KEY: project.name}}
        desired.chain.update(chain_entries(service, {MANAGED_KEY: "true", PROJECT_KEY: project.name}))
    return desired


def policy_problems(spec: Spec) -> list[Problem]:
    """nomadmesh.json rules that Consul would refuse (its own text), found before anything is written."""
    problems = []
    label = spec.project.source or "nomadmesh.json"
    for rule in spec.project.intentions:
        src: dict[str, Any] = {"Name": rule.source, "Type": "consul"}
        if rule.permissions:
            src["Permissions"] = json.loads(rule.permissions)
        else:
            src["Action"] = rule.action
        if rule.description:
            src["Description"] = rule.description
        entry = {"Kind": INTENTIONS, "Name": rule.destination, "Sources": [src]}
        try:
            from_config_entry(entry)
            validate(entry)
        except (IntentionError, InvalidIntentions) as e:
            text = str(e).replace("Sources[0].", "").replace("Sources[0]", "")
            problems.append(Problem(label, rule.where, f"Consul would refuse it: {text}"))
    for service in spec.services:
        problems += traffic_problems(service)
    return problems


# --- ownership marks in an entry's Meta ---------------------------------------------------------


def owner_of(entry: dict[str, Any] | None, source: str) -> str:
    """Who wrote `source` in this service-intentions entry ("" when nomadmesh did not)."""
    return str(((entry or {}).get("Meta") or {}).get(source_key(source), ""))


def has_marks(entry: dict[str, Any]) -> bool:
    """Whether nomadmesh marked any source of this entry (a deploy manages some of its sources)."""
    return any(str(k).startswith(SOURCE_KEY) for k in entry.get("Meta") or {})


def owns_defaults(entry: dict[str, Any] | None, project: str) -> bool:
    meta = (entry or {}).get("Meta") or {}
    return str(meta.get(MANAGED_KEY, "")).lower() == "true" and meta.get(PROJECT_KEY) == project


def mark(entry: dict[str, Any], source: str, owner: str) -> dict[str, Any]:
    """`entry` with `source` marked as written by `owner`.

    When `intent` takes over a source that a deploy owned, the deploy's source is saved (if it fits
    in a Meta value) so that deleting the operator's source restores it.
    """
    meta = dict(entry.get("Meta") or {})
    previous = meta.get(source_key(source), "")
    old = next((s for s in entry.get("Sources") or [] if s.get("Name") == source), None)
    if owner.startswith("deploy:"):
        meta.pop(SAVED_KEY + source, None)
    elif previous.startswith("deploy:") and old is not None:
        saved = json.dumps({"owner": previous, "source": _decision(old)}, sort_keys=True)
        if len(saved) <= MAX_META_VALUE:
            meta[SAVED_KEY + source] = saved
    meta[source_key(source)] = owner
    return {**entry, "Meta": meta}


def unmark(entry: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """`entry` with the marks of `source` removed, plus the saved deploy source to put back (and its owner)."""
    meta = dict(entry.get("Meta") or {})
    meta.pop(source_key(source), None)
    saved_text = meta.pop(SAVED_KEY + source, None)
    out = {k: v for k, v in entry.items() if k != "Meta"}
    if meta:
        out["Meta"] = meta
    if not saved_text:
        return out, None, ""
    try:
        saved = json.loads(saved_text)
        return out, dict(saved["source"]), str(saved["owner"])
    except (ValueError, KeyError, TypeError):
        return out, None, ""  # someone edited the Meta by hand: nothing trustworthy to restore


def _decision(source: dict[str, Any]) -> dict[str, Any]:
    """A source without the fields Consul computes (Precedence)."""
    return {k: v for k, v in source.items() if k != "Precedence"}


def same_decision(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two sources decide the same (action or L7 permissions), ignoring description and defaults."""
    if a is None or b is None:
        return a is b
    return _canon(a) == _canon(b)


def same_source(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return same_decision(a, b) and (a or {}).get("Description", "") == (b or {}).get("Description", "")


def _canon(source: dict[str, Any]) -> Any:
    perms = source.get("Permissions") or []
    if perms:
        return ("l7", json.dumps([{"Action": str(p.get("Action", "")).lower(),
                                   "HTTP": {k: v for k, v in (p.get("HTTP") or {}).items() if v not in (None, [], "")}}
                                  for p in perms], sort_keys=True))
    return ("l4", str(source.get("Action", "")).lower())

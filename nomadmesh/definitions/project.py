"""The optional project file (`nomadmesh.json`) → `Project`. Pure: parsed JSON in."""
from __future__ import annotations

import json
from typing import Any

from nomadmesh.definitions.fields import Obj, Reader, join
from nomadmesh.definitions.model import IntentionRule, Project
from nomadmesh.definitions.variables import parse_declarations
from nomadmesh.errors import Problem

PROJECT_KEYS = ("name", "datacenters", "region", "namespace", "external_services", "variables", "meta",
                "derive_intentions", "intentions")
# nomadmesh's own job meta keys (render/ownership.py) start with this; a project key may not, so the
# ownership mark and the change hash can never be overwritten or faked by the project's meta.
RESERVED_META_PREFIX = "nomadmesh_"
RULE_KEYS = ("source", "destination", "action", "permissions", "description")
PERMISSION_KEYS = ("action", "http")
# Consul's IntentionHTTPPermission keys, in its JSON spelling (the rule passes them through as written).
HTTP_KEYS = ("PathExact", "PathPrefix", "PathRegex", "Methods", "Header")
ACTIONS = ("allow", "deny")


DEFAULT_PROJECT = "default"


def project_name(declared: str | None = None, env: str | None = None) -> str:
    """The name that marks what this project owns on a cluster (job meta, intention sources).

    nomadmesh.json's `name`, else "default" (never the folder's name: two clones of one project
    must render the same files). An environment (--env) is a project of its own, `<name>.<env>`,
    so deploying or pruning one never touches another's jobs.
    """
    base = declared or DEFAULT_PROJECT
    return f"{base}.{env}" if env else base


def is_named(project: str) -> bool:
    """Whether nomadmesh.json names the project. Unnamed projects all share "default", so what
    one of them owns may be another's: deploy then never removes anything as no longer declared."""
    return project.split(".")[0] != DEFAULT_PROJECT


def _word(text: str) -> bool:
    # Nomad region/namespace and Consul datacenter names: letters, digits, '-' and '_'.
    return bool(text) and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


def parse_project(doc: Any, label: str) -> tuple[Project, list[Problem]]:
    r = Reader(label)
    default = Project(source=label)
    o = r.obj(doc, "", PROJECT_KEYS)
    if o is None:
        return default, r.problems
    datacenters = o.strings("datacenters")
    if datacenters is not None:
        if not datacenters:
            r.error(o.at("datacenters"), "must list at least one datacenter")
            datacenters = None
        for i, dc in enumerate(datacenters or ()):
            if not _word(dc):
                r.error(join(o.at("datacenters"), i), f"{dc!r} is not a datacenter name: letters, digits, '-' and '_'")
    name = o.string("name")
    if name is not None and not r.name_ok(o.at("name"), name):
        name = None
    region, namespace = o.string("region"), o.string("namespace")
    for key, value in (("region", region), ("namespace", namespace)):
        if value is not None and not _word(value):
            r.error(o.at(key), f"{value!r} is not a {key} name: letters, digits, '-' and '_'")
    external = _names(r, o)
    meta = _meta(r, o)
    derive = o.boolean("derive_intentions")
    rules = _rules(r, o) if o.has("intentions") else ()
    declared, var_problems = parse_declarations(o.raw("variables"), label) if o.has("variables") else ((), [])
    return (
        Project(
            datacenters=datacenters or default.datacenters,
            region=region or default.region,
            namespace=namespace or default.namespace,
            external_services=external,
            source=label,
            declared=declared,
            meta=meta,
            name=name or DEFAULT_PROJECT,
            derive_intentions=True if derive is None else derive,
            intentions=rules,
        ),
        r.problems + var_problems,
    )


def _names(r: Reader, o: Obj) -> tuple[str, ...]:
    names = o.strings("external_services") or ()
    good = []
    for i, name in enumerate(names):
        # Same rule as a service name: these are Consul services an upstream points at.
        if r.name_ok(join(o.at("external_services"), i), name):
            good.append(name)
    return tuple(sorted(set(good)))


def _meta(r: Reader, o: Obj) -> tuple[tuple[str, str], ...]:
    """`meta`: string -> string, written into every job's `meta` beside nomadmesh's own keys."""
    pairs = o.pairs("meta") or ()
    clash = [key for key, _ in pairs if key.startswith(RESERVED_META_PREFIX)]
    for key in clash:
        r.error(join(o.at("meta"), key), f"keys starting with {RESERVED_META_PREFIX!r} are nomadmesh's own "
                "job meta (ownership and the definition hash); choose another name")
    return tuple((k, v) for k, v in pairs if k not in clash)


def _rules(r: Reader, o: Obj) -> tuple[IntentionRule, ...]:
    """`intentions`: [{source, destination, action | permissions, description}], Consul's meaning.

    `*` is allowed for source or destination (Consul's wildcard). Permissions keep Consul's L7 shape
    ({"action": ..., "http": {"PathPrefix": ..., "Methods": [...], "Header": [...]}}); Consul's own
    rules for them (paths start with '/', valid regexes, ...) are checked when the entry is planned.
    """
    out = []
    for i, item in enumerate(r.array(o.raw("intentions"), o.at("intentions")) or ()):
        path = join(o.at("intentions"), i)
        ro = r.obj(item, path, RULE_KEYS)
        if ro is None:
            continue
        ends = [ro.string(key, required=True) for key in ("source", "destination")]
        for key, end in zip(("source", "destination"), ends, strict=True):
            if end is not None and end != "*" and not r.name_ok(ro.at(key), end):
                ends = [None, None]
        action = ro.choice("action", ACTIONS)
        permissions = _permissions(r, ro) if ro.has("permissions") else None
        if ro.has("action") == ro.has("permissions"):
            r.error(path, "needs exactly one of 'action' (allow or deny) and 'permissions' (L7 rules)")
            continue
        source, destination = ends
        if source is None or destination is None or (action is None and permissions is None):
            continue
        out.append(IntentionRule(source, destination, action, permissions or "",
                                 ro.string("description") or "", path))
    return tuple(out)


def _permissions(r: Reader, ro: Obj) -> str | None:
    """The rule's L7 permissions as Consul's `Permissions` JSON text, or None if any is malformed."""
    items = r.array(ro.raw("permissions"), ro.at("permissions"))
    if not items:
        if items is not None:
            r.error(ro.at("permissions"), "must list at least one permission")
        return None
    out = []
    for j, item in enumerate(items):
        po = r.obj(item, join(ro.at("permissions"), j), PERMISSION_KEYS)
        if po is None:
            return None
        action = po.choice("action", ACTIONS, required=True)
        http = r.obj(po.raw("http"), po.at("http"), HTTP_KEYS) if po.has("http") else None
        if action is None or (po.has("http") and http is None):
            return None
        out.append({"Action": action, "HTTP": dict(po.raw("http") or {})})
    return json.dumps(out, sort_keys=True)

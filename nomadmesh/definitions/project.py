"""The optional project file (`nomadmesh.json`) → `Project`. Pure: parsed JSON in."""
from __future__ import annotations

from typing import Any

from nomadmesh.definitions.fields import Obj, Reader, join
from nomadmesh.definitions.model import Project
from nomadmesh.definitions.variables import parse_declarations
from nomadmesh.errors import Problem

PROJECT_KEYS = ("name", "datacenters", "region", "namespace", "external_services", "variables", "meta")
# nomadmesh's own job meta keys (render/ownership.py) start with this; a project key may not, so the
# ownership mark and the change hash can never be overwritten or faked by the project's meta.
RESERVED_META_PREFIX = "nomadmesh_"


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
    region, namespace = o.string("region"), o.string("namespace")
    for key, what, value in (("name", "project", o.string("name")), ("region", "region", region),
                             ("namespace", "namespace", namespace)):
        if value is not None and not _word(value):
            r.error(o.at(key), f"{value!r} is not a {what} name: letters, digits, '-' and '_'")
    external = _names(r, o)
    meta = _meta(r, o)
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


def project_name(doc: Any, folder: str) -> str:
    """The project's name: nomadmesh.json's `name`, else the name of the folder holding it.

    What the project's records on a cluster are keyed by (its releases in Consul KV), so two
    projects deploying to one cluster keep apart. Characters a name may not hold become '-'.
    """
    name = doc.get("name") if isinstance(doc, dict) else None
    text = name if isinstance(name, str) and name else folder
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in text) or "project"

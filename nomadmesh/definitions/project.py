"""The optional project file (`nomadmesh.json`) → `Project`. Pure: parsed JSON in."""
from __future__ import annotations

from typing import Any

from nomadmesh.definitions.fields import Obj, Reader, join
from nomadmesh.definitions.model import Project
from nomadmesh.definitions.variables import parse_declarations
from nomadmesh.errors import Problem

PROJECT_KEYS = ("name", "datacenters", "region", "namespace", "external_services", "variables")


DEFAULT_PROJECT = "default"


def project_name(declared: str | None = None, env: str | None = None) -> str:
    """The name that marks what this project owns on a cluster (job meta, intention sources).

    nomadmesh.json's `name`, else "default" (never the folder's name: two clones of one project
    must render the same files). An environment (--env) is a project of its own, `<name>.<env>`,
    so deploying or pruning one never touches another's jobs.
    """
    base = declared or DEFAULT_PROJECT
    return f"{base}.{env}" if env else base


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
    declared, var_problems = parse_declarations(o.raw("variables"), label) if o.has("variables") else ((), [])
    return (
        Project(
            datacenters=datacenters or default.datacenters,
            region=region or default.region,
            namespace=namespace or default.namespace,
            external_services=external,
            source=label,
            declared=declared,
            name=name or DEFAULT_PROJECT,
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

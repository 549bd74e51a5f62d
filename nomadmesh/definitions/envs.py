"""Environments: `envs/<NAME>.json` laid over the project and its service definitions. Pure.

An env file is `{"project": {...}, "services": {"<name>": {...}}, "variables": {...}}`. Its project
object and each service object are deep-merged into nomadmesh.json and service.json before those are
parsed, so an override goes through exactly the same rules as the file it overrides. Objects merge key
by key; anything else (strings, numbers, lists such as tags) replaces the value underneath.
Problems in an overridden field name the env file: `envs/prod.json: services.api.nomad.count: ...`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nomadmesh.errors import Problem

ENVS_DIR = "envs"
ENV_KEYS = ("project", "services", "variables", "name_suffix")


@dataclass(frozen=True)
class Env:
    """One parsed env file: what it overrides, and the label its problems carry."""

    label: str
    project: dict[str, Any] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    # A preview environment: every service defined here, and every upstream to one, is renamed
    # `<name><suffix>`, so a branch's copy of the mesh runs beside the main one.
    name_suffix: str = ""


def env_name_ok(name: str) -> bool:
    # A file name under envs/: letters, digits, '-', '_' and '.', never a path.
    return bool(name) and name[0] != "." and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)


def deep_merge(base: Any, override: Any) -> Any:
    """`override` over `base`: objects merge recursively, any other value replaces. Inputs are not changed."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


def parse_env(doc: Any, label: str) -> tuple[Env, list[Problem]]:
    """Check the env file's own shape (the overrides themselves are checked after merging)."""
    if not isinstance(doc, dict):
        return Env(label), [Problem(label, "", "must be a JSON object with 'project', 'services' or 'variables'")]
    problems = [Problem(label, key, f"unknown key; expected one of: {', '.join(ENV_KEYS)}")
                for key in doc if key not in ENV_KEYS]
    suffix = doc.get("name_suffix", "")
    if not isinstance(suffix, str):
        problems.append(Problem(label, "name_suffix", "must be a string such as \"-pr42\""))
        suffix = ""
    parts: dict[str, dict[str, Any]] = {}
    for key in ("project", "services", "variables"):
        value = doc.get(key, {})
        if not isinstance(value, dict):
            problems.append(Problem(label, key, "must be a JSON object"))
            value = {}
        parts[key] = value
    services: dict[str, dict[str, Any]] = {}
    for name, override in parts["services"].items():
        if isinstance(override, dict):
            services[name] = override
        else:
            problems.append(Problem(label, f"services.{name}", "must be a JSON object shaped like service.json"))
    return Env(label, parts["project"], services, parts["variables"], suffix), problems


def _at(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]..., or None as soon as something on the way is not an object (parse reports it)."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _renamed(item: Any, key: str, suffix: str, defined: set[str]) -> Any:
    # Only a well-formed reference to a service of the folder is renamed; anything else is left for parse.
    value = _at(item, key)
    return {**item, key: value + suffix} if isinstance(value, str) and value in defined else item


def with_suffix(doc: Any, suffix: str, defined: set[str]) -> Any:
    """A service document renamed for a preview environment: its name, its upstreams and an ingress
    gateway's routes to services `defined` in the folder get `suffix`; external services keep their names."""
    service = _at(doc, "service")
    if not suffix or not isinstance(_at(service, "name"), str):
        return doc
    service = {**service, "name": service["name"] + suffix}
    upstreams = _at(service, "connect", "sidecar_service", "proxy", "upstreams")
    if isinstance(upstreams, list):
        renamed = [_renamed(u, "destination_name", suffix, defined) for u in upstreams]
        service = deep_merge(service, {"connect": {"sidecar_service": {"proxy": {"upstreams": renamed}}}})
    renamed_doc = {**doc, "service": service}
    listeners = _at(doc, "ingress", "listeners")
    if isinstance(listeners, list):
        renamed_doc["ingress"] = {**doc["ingress"], "listeners": [_listener(lst, suffix, defined) for lst in listeners]}
    return renamed_doc


def _listener(listener: Any, suffix: str, defined: set[str]) -> Any:
    services = _at(listener, "services")
    if not isinstance(services, list):
        return listener
    return {**listener, "services": [_renamed(s, "name", suffix, defined) for s in services]}


def blame_suffix(problems: list[Problem], env: Env, name: str) -> list[Problem]:
    """A service name the suffix made invalid (its own, or one it calls) is the env file's problem."""
    def renamed(p: Problem) -> bool:
        return p.field == "service.name" or (p.field.endswith("name") and env.name_suffix in p.message)

    return [Problem(env.label, "name_suffix", f"in {name!r}.{p.field}: {p.message}", p.severity)
            if renamed(p) else p for p in problems]


def leaf_paths(override: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the values an override sets (objects are walked, everything else is a leaf)."""
    if isinstance(override, dict) and override:
        return [p for key, value in override.items() for p in leaf_paths(value, f"{prefix}.{key}" if prefix else key)]
    return [prefix]


def blame_env(problems: list[Problem], override: Any, env_label: str, prefix: str) -> list[Problem]:
    """Problems in a field the override set (or under it) are reported against the env file."""
    paths = leaf_paths(override)

    def owned(fld: str) -> bool:
        return any(p and (fld == p or fld.startswith(p + ".") or fld.startswith(p + "[")) for p in paths)

    return [Problem(env_label, f"{prefix}.{p.field}", p.message, p.severity) if owned(p.field) else p
            for p in problems]


def unknown_services(env: Env, known: set[str]) -> list[Problem]:
    """An override for a service that is not defined is an error, with the names that are."""
    return [Problem(env.label, f"services.{name}",
                    f"no such service; defined: {', '.join(sorted(known)) or '(none)'}")
            for name in env.services if name not in known]

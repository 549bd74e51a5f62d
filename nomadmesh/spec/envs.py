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
ENV_KEYS = ("project", "services", "variables")


@dataclass(frozen=True)
class Env:
    """One parsed env file: what it overrides, and the label its problems carry."""

    label: str
    project: dict[str, Any] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)


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
    parts: dict[str, dict[str, Any]] = {}
    for key in ENV_KEYS:
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
    return Env(label, parts["project"], services, parts["variables"]), problems


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

"""`nomad.job`, `nomad.group`, `nomad.task`, `nomad.sidecar_task`: any Nomad block, written as
Nomad's HCL structure in JSON, checked against the jobspec schema (the parser the agent uses).

What nomadmesh writes itself from the definition (the group's network and service, the task's
driver and config...) is refused here with the key to use instead, so the job file never holds
two of one block. Blocks Nomad has and the dev agent does not run (vault, volume...) are accepted:
a real Nomad runs them, the dev agent refuses them at registration with its own error.
"""
from __future__ import annotations

import json
import re
from typing import Any

from nomadmesh.definitions.fields import Reader, did_you_mean, got, join
from nomadmesh.jobspec.schema import by_hcl

# (nomad key, schema object, keys nomadmesh writes itself -> what to use instead)
LEVELS: dict[str, tuple[str, dict[str, str]]] = {
    "job": ("Job", {"datacenters": "nomadmesh.json", "region": "nomadmesh.json", "namespace": "nomadmesh.json",
                    "type": "", "meta": "nomadmesh.json's meta", "group": "", "id": "", "name": "",
                    "update": "nomad.update"}),
    "group": ("TaskGroup", {"count": "nomad.count", "network": "nomad.ports / nomad.publish",
                            "service": "service", "restart": "nomad.restart", "update": "nomad.update",
                            "task": "nomad.task"}),
    "task": ("Task", {"driver": "nomad.driver", "config": "nomad.command / nomad.image", "env": "nomad.env",
                      "resources": "nomad.resources", "service": "service"}),
    "sidecar_task": ("SidecarTask", {}),
}
LABELLED = frozenset({"volume"})  # blocks with a label: JSON maps label -> body
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_SCALARS = {"str": (str,), "int": (int,), "bool": (bool,), "dur": (str, int)}
_WHAT = {"str": "a string", "int": "an integer", "bool": "a boolean", "dur": "a duration"}


def read_blocks(r: Reader, nomad: Any) -> tuple[tuple[str, str], ...]:
    """(level, canonical JSON text) of each generic map that is present; problems go to `r`."""
    if not isinstance(nomad, dict):
        return ()
    out: list[tuple[str, str]] = []
    for level, (obj, owned) in LEVELS.items():
        if level not in nomad:
            continue
        path = join("nomad", level)
        value = nomad[level]
        if not isinstance(value, dict):
            r.error(path, f"must be an object (Nomad's {level} block in JSON), {got(value)}")
            continue
        before = len(r.problems)
        for key in value:
            if key in owned:
                instead = f"; use {owned[key]}" if owned[key] else ""
                r.error(join(path, key), f"is written by nomadmesh{instead}")
        _check_object(r, {k: v for k, v in value.items() if k not in owned}, path, obj)
        if len(r.problems) == before:
            out.append((level, json.dumps(value, sort_keys=True, separators=(",", ":"))))
    return tuple(out)


def _check_object(r: Reader, value: dict[str, Any], path: str, obj: str) -> None:
    known = by_hcl(obj)
    for key, item in value.items():
        where = join(path, key)
        field = known.get(key)
        if field is None:
            r.error(where, "unknown Nomad attribute or block" + did_you_mean(key, sorted(known)))
            continue
        _check_value(r, item, where, field.kind, field.obj, key)


def _check_value(r: Reader, item: Any, where: str, kind: str, obj: str | None, key: str) -> None:
    if kind in _SCALARS:
        ok = isinstance(item, _SCALARS[kind]) and (kind == "bool" or not isinstance(item, bool))
        if not ok:
            r.error(where, f"must be {_WHAT[kind]}, {got(item)}")
    elif kind == "strs":
        if not isinstance(item, list) or not all(isinstance(i, str) for i in item):
            r.error(where, f"must be a list of strings, {got(item)}")
    elif kind == "smap":
        if not isinstance(item, dict) or not all(isinstance(v, str) for v in item.values()):
            r.error(where, f"must be an object of strings, {got(item)}")
        else:
            _keys(r, item, where)
    elif kind == "obj" and obj:
        if isinstance(item, dict):
            _check_object(r, item, where, obj)
        else:
            r.error(where, f"must be an object ({key} block), {got(item)}")
    elif kind == "objs" and obj:
        items = item if isinstance(item, list) else [item]
        for i, one in enumerate(items):
            at = join(where, i) if isinstance(item, list) else where
            if isinstance(one, dict):
                _check_object(r, one, at, obj)
            else:
                r.error(at, f"must be an object ({key} block), {got(one)}")
    elif isinstance(item, dict):  # any, hdr, or a block Nomad has that the schema does not detail
        _keys(r, item, where)


def _keys(r: Reader, value: dict[str, Any], where: str) -> None:
    # Keys become HCL identifiers in the job file.
    for key, item in value.items():
        if not _IDENT.match(key):
            r.error(join(where, key), "is not an HCL name: letters, digits, '_' and '-', not starting with a digit")
        elif isinstance(item, dict):
            _keys(r, item, join(where, key))


def not_decoded(level: str, value: Any, path: str | None = None) -> list[str]:
    """Paths of the blocks and attributes in one generic map (`nomad.<level>`) that Nomad has and
    nomadmesh's jobspec parser does not decode (volume, spread...): the HCL carries them to
    Nomad, but an offline parse (`render --format json`) cannot turn them into Job JSON."""
    return _not_decoded(LEVELS[level][0], value, path or join("nomad", level))


def _not_decoded(obj: str, value: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    known = by_hcl(obj)
    found: list[str] = []
    for key, item in value.items():
        field = known.get(key)
        if field is None:
            continue  # unknown keys are refused by read_blocks
        if field.kind == "unsupported":
            found.append(join(path, key))
        elif field.obj and field.kind in ("obj", "objs"):
            items = item if isinstance(item, list) else [item]
            for i, one in enumerate(items):
                found += _not_decoded(field.obj, one, join(join(path, key), i) if isinstance(item, list)
                                      else join(path, key))
    return found

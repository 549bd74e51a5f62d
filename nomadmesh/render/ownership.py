"""The job meta that marks a job as nomadmesh's and fingerprints the definition it came from.

The hash is sha256 over canonical JSON (sorted keys, no whitespace) of the service and project
models. `source` and `templates_dir` fields are left out: they say where a definition was read,
not what it is, so moving a folder does not make every job look changed. What the project's
`templates/` changed from the built-in pack is in it (`pack.overrides`): a template edit changes
the job, so `plan` must not call it unchanged.
"""
from __future__ import annotations

import dataclasses
import hashlib
from functools import cache, lru_cache
from importlib import metadata
from typing import Any

from nomadmesh.definitions.model import Project, Service
from nomadmesh.jobspec.json_text import compact_json
from nomadmesh.pack import overrides

MANAGED_KEY = "nomadmesh_managed"
HASH_KEY = "nomadmesh_hash"
VERSION_KEY = "nomadmesh_version"
PROJECT_KEY = "nomadmesh_project"  # the project's name (Project.name): whose job this is, for orphans and prune
# Service meta only a canary registers (jobs with update.canary): how `nomadmesh release` tells the
# new version's instances from the stable ones (its resolver's subset filters). Nomad registers a
# promoted canary with the normal meta, so the key goes away once the release is promoted.
CANARY_META_KEY = "nomadmesh_canary"


_WHERE = ("source", "templates_dir")
# Settings that go into Consul config entries, not into any job (mesh/policy.py): changing an
# intention rule, a split or a route, or the folder that names the project, must not make a job look changed.
_NOT_IN_JOBS: dict[type, tuple[str, ...]] = {Project: ("name", "derive_intentions", "intentions"),
                                             Service: ("traffic",)}
# Fields added after jobs were deployed: left out while unset, so existing jobs keep their hash.
_NEW_UNSET: dict[type, tuple[str, ...]] = {Service: ("protocol",)}


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    skip = (*_WHERE, *_NOT_IN_JOBS.get(cls, ()))
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip)


_SCALARS = (str, int, float, bool, type(None))


def _plain(obj: Any) -> Any:
    """Dataclasses to dicts (minus `source` and `templates_dir`), tuples to lists: the JSON-able form of a model.
    (Scalars, most of a model, are kept as they are without a call each: this runs for every job rendered.)"""
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, (tuple, list)):
        return [v if type(v) in _SCALARS else _plain(v) for v in obj]
    cls: type = type(obj)
    unset = _NEW_UNSET.get(cls, ())
    out: dict[str, Any] = {}
    for name in _field_names(cls):
        value = getattr(obj, name)
        if value is None and name in unset:
            continue
        out[name] = value if type(value) in _SCALARS else _plain(value)
    return out


def definition_hash(service: Service, project: Project) -> str:
    doc: dict[str, Any] = {"service": _plain(service), "project": _plain(project)}
    templates = overrides(project.templates_dir)
    if templates:  # absent when nothing is overridden, so the built-in pack's hashes stay as they were
        doc["templates"] = [list(t) for t in templates]
    canonical = compact_json(doc)  # json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@lru_cache(maxsize=1)
def package_version() -> str:
    try:
        return metadata.version("nomadmesh")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def job_meta(service: Service, project: Project) -> tuple[tuple[str, str], ...]:
    """The job-level meta pairs, in the order the job file shows them."""
    pairs = (
        (MANAGED_KEY, "true"),
        (HASH_KEY, definition_hash(service, project)),
        (VERSION_KEY, package_version()),
    )
    return pairs + (((PROJECT_KEY, project.name),) if project.name else ())

"""`cached_parse_hcl(text, variables, folder)`: `parse_hcl`, remembered on disk by content.

A job's JSON is its HCL read back by the jobspec parser (~1 ms of CPU a job in Python), and most jobs do
not change between two renders. Each successful parse is kept as `<folder>/<key>.json`, where the
key is the sha256 of the parser's identity (the source of this package, python-hcl2's, Lark's,
lark-cython's and orjson's versions), the HCL text and the variables: any change to one of them is a
different key, so a cached result is never stale, only unused. Errors are never cached. The cache is an addition: a
missing, unreadable or corrupt entry is parsed again, and a folder that cannot be written to only
means nothing is kept.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from nomadmesh.jobspec.json_text import pretty_json
from nomadmesh.jobspec.parse import parse_hcl


@functools.lru_cache(maxsize=1)
def parser_identity() -> str:
    """sha256 of everything that decides what `parse_hcl` returns: this package's code and the
    versions of the libraries under it."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for dist in ("python-hcl2", "lark", "lark-cython", "orjson"):
        try:
            digest.update(f"{dist} {version(dist)};".encode())
        except PackageNotFoundError:  # lark-cython is optional to the parser
            digest.update(f"{dist} absent;".encode())
    return digest.hexdigest()


def cache_key(text: str, variables: dict[str, Any] | str | None) -> str:
    material = json.dumps([parser_identity(), text, variables], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def cached_parse_hcl(text: str, variables: dict[str, Any] | str | None, folder: Path) -> dict[str, Any]:
    """`parse_hcl(text, variables)`, from `folder` when this exact parse was done before."""
    job: dict[str, Any] = json.loads(cached_job_json(text, variables, folder))
    return job


def cached_job_json(text: str, variables: dict[str, Any] | str | None, folder: Path) -> str:
    """`parse_hcl(text, variables)` as JSON text (2-space indent, sorted keys, no ASCII escaping),
    which is also how the entry is stored: a warm render then neither decodes nor re-encodes it
    (Python's json encodes with an indent in pure Python, a third of a warm render's time)."""
    path = folder / f"{cache_key(text, variables)}.json"
    try:
        stored = path.read_text(encoding="utf-8")
        if isinstance(json.loads(stored), dict):  # a damaged or foreign entry is never served
            return stored
    except (OSError, ValueError):  # not there yet, or damaged: parse again and rewrite it
        pass
    job_json = pretty_json(parse_hcl(text, variables))
    _write(path, job_json)
    return job_json


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a reader (another worker, another render)
    sees the whole entry or none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return  # the cache is optional: a folder we cannot write only means nothing is kept

"""`ParseCache`: `parse_hcl` results remembered on disk by content, all in one file.

A job's JSON is its HCL read back by the jobspec parser (~1 ms of CPU a job in Python), and most jobs do
not change between two renders. The cache keeps, for each job name, the JSON text of its latest
successful parse and the key it was parsed under: the sha256 of the parser's identity (the source
of this package, python-hcl2's, Lark's, lark-cython's and orjson's versions), the HCL text and the
variables. Any change to one of them is a different key, so a cached result is never stale, only
unused; a job parsed again takes its name's slot, so the file holds one entry per job name.

It is one file (`parses.json`), read once and written once per render, through a temporary file and a
rename: creating a file costs more than parsing a job on some file systems (a file per entry made
a first render of 1,000 jobs three times slower than not caching). Errors are never cached. The cache is
an addition: a missing, unreadable or damaged file is an empty cache, and a folder that cannot be
written to only means nothing is kept.
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

import orjson

from nomadmesh.jobspec.json_text import pretty_json
from nomadmesh.jobspec.parse import parse_hcl

FILE_NAME = "parses.json"

Variables = dict[str, Any] | str | None


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


def cache_key(text: str, variables: Variables) -> str:
    material = json.dumps([parser_identity(), text, variables], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


class ParseCache:
    """One folder's parse results: `lookup` before parsing, `job_json` to parse on a miss, then
    `save` once. Lookups may run in forked workers (they only read); what a worker parsed comes
    back to the parent as an entry, which `remember` records before `save`."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / FILE_NAME
        self._slots = _read(self.path)  # job name -> [key, job JSON]
        self._changed = False

    def lookup(self, name: str, key: str) -> str | None:
        """The JSON of job `name` parsed under `key`, when this exact parse was done before."""
        slot = self._slots.get(name)
        return slot[1] if slot is not None and slot[0] == key else None

    def names(self) -> list[str]:
        return sorted(self._slots)

    def remember(self, name: str, key: str, job_json: str) -> None:
        if self._slots.get(name) != [key, job_json]:
            self._slots[name] = [key, job_json]
            self._changed = True

    def save(self) -> None:
        """Write the file when something changed, through a temporary file and a rename, so a
        reader (another render) sees the whole cache or the one before."""
        if not self._changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(orjson.dumps(self._slots))
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            return  # the cache is optional: a folder we cannot write only means nothing is kept
        self._changed = False


def job_json(text: str, variables: Variables) -> str:
    """`parse_hcl(text, variables)` as JSON text (2-space indent, sorted keys, no ASCII escaping),
    which is also how an entry is stored: a warm render then neither decodes nor re-encodes it
    (Python's json encodes with an indent in pure Python, a third of a warm render's time)."""
    return pretty_json(parse_hcl(text, variables))


def _read(path: Path) -> dict[str, list[str]]:
    """The file's slots; anything but a well-formed file is an empty cache (parsed again, rewritten)."""
    try:
        slots = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(slots, dict):
        return {}
    return {name: slot for name, slot in slots.items()
            if isinstance(slot, list) and len(slot) == 2 and all(isinstance(s, str) for s in slot)
            and slot[1].startswith("{")}


def cached_parse_hcl(text: str, variables: Variables, folder: Path, name: str = "job") -> dict[str, Any]:
    """`parse_hcl(text, variables)`, from `folder` when this exact parse was done before (one job at
    a time: a render uses `ParseCache` directly, to read and write the file once)."""
    cache = ParseCache(folder)
    key = cache_key(text, variables)
    found = cache.lookup(name, key)
    if found is None:
        found = job_json(text, variables)
        cache.remember(name, key, found)
        cache.save()
    job: dict[str, Any] = json.loads(found)
    return job

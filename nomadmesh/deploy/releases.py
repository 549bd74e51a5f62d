"""Releases: what each deploy (or rollback) left on the target, recorded in the target itself.

A release is one Consul KV key, `nomadmesh/<project>/releases/<n>`, holding JSON:

    {"number": 3, "time": "2026-11-27T18:20:01Z", "who": "alice@laptop", "kind": "deploy",
     "rolled_back_to": null,
     "jobs": {"api": 4, "web": 2},                                  # the live job versions
     "entries": {"service-intentions/api": {...the entry as read...},
                 "service-defaults/api": null}}                      # null: no such entry

Kept in Consul, not on the laptop that deployed, so `nomadmesh history` and `rollback` work from
any machine. A release is a snapshot read back after the deploy: the live version of every job of
the project (this deploy's and the previous release's), and the whole `service-intentions` and
`service-defaults` entry (and service-resolver, -splitter, -router) of every service those jobs
register or call, as Consul holds it.

Numbers are taken with KV check-and-set (`cas=0`: create only), so two deploys finishing at the
same time never take the same number; the loser reads again and takes the next one.

Pure in the middle (`Release`, `mesh_names`, `entry_keys`, `same_state`), I/O at the edges
(`ReleaseStore`, `read_entries`, `snapshot`, `record`).
"""
from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nomadmesh.definitions.load import PROJECT_FILE, read_json
from nomadmesh.definitions.project import project_name
from nomadmesh.deploy.apply import DeployReport
from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.deploy.intentions import retry_cas
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.plan import Plan
from nomadmesh.deploy.target import Target
from nomadmesh.errors import NomadMeshError, TargetError

# service-defaults before the discovery-chain kinds: a rollback writes entries in this order.
ENTRY_KINDS = ("service-intentions", "service-defaults", "service-resolver", "service-splitter", "service-router")


class ReleaseInputError(NomadMeshError):
    """history/rollback asked for something that is not there (no releases, an unknown number)."""

    exit_code = 2

# Fields Consul sets itself on an entry: not part of what a release restores or compares.
SERVER_FIELDS = ("CreateIndex", "ModifyIndex", "Hash")

Entry = dict[str, Any]


@dataclass(frozen=True)
class Release:
    """One recorded release (see the module doc for its JSON)."""

    number: int
    time: str
    who: str
    kind: str  # "deploy" or "rollback"
    jobs: dict[str, int]  # job name → live version after the deploy
    entries: dict[str, Entry | None] = field(default_factory=dict)  # "kind/name" → entry (None: absent)
    rolled_back_to: int | None = None

    def to_json(self) -> str:
        return json.dumps({"number": self.number, "time": self.time, "who": self.who, "kind": self.kind,
                           "rolled_back_to": self.rolled_back_to, "jobs": self.jobs, "entries": self.entries},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Release:
        try:
            doc = json.loads(text)
            return cls(number=int(doc["number"]), time=str(doc["time"]), who=str(doc["who"]),
                       kind=str(doc["kind"]), jobs={str(k): int(v) for k, v in doc["jobs"].items()},
                       entries=dict(doc.get("entries") or {}), rolled_back_to=doc.get("rolled_back_to"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TargetError(f"{where}: not a nomadmesh release record ({e})") from None

    @property
    def present_entries(self) -> list[str]:
        return sorted(k for k, v in self.entries.items() if v is not None)


def entry_key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def split_key(key: str) -> tuple[str, str]:
    kind, _, name = key.partition("/")
    return kind, name


def comparable(entry: Mapping[str, Any] | None) -> Entry | None:
    """The entry without the fields Consul sets itself (indexes, hash): what a release holds."""
    return None if entry is None else {k: v for k, v in entry.items() if k not in SERVER_FIELDS}


def mesh_names(job: Mapping[str, Any]) -> set[str]:
    """The Consul services a job registers and those its sidecars call (its upstreams), from the
    job as Nomad holds it: the names whose entries decide what the job may call and be called by."""
    names: set[str] = set()
    for group in job.get("TaskGroups") or []:
        for svc in group.get("Services") or []:
            if svc.get("Name"):
                names.add(svc["Name"])
            proxy = (((svc.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {})
            names.update(u["DestinationName"] for u in proxy.get("Upstreams") or [] if u.get("DestinationName"))
    return names


def entry_keys(names: Iterable[str]) -> list[str]:
    return sorted(entry_key(kind, name) for name in set(names) for kind in ENTRY_KINDS)


def same_state(a: Release, b: Release) -> bool:
    return a.jobs == b.jobs and a.entries == b.entries


def who_am_i() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def project_of(services_dir: Path, project_file: Path | None, env: str | None = None) -> str:
    """The project's release stream: `definitions.project.project_name` (nomadmesh.json's `name`, `.<env>`).

    Reads only the project file, so history and rollback work even while the definitions do not
    validate (that may be why one rolls back)."""
    path = Path(project_file) if project_file is not None else Path(services_dir).parent / PROJECT_FILE
    doc, problems = read_json(path, str(path)) if path.exists() else ({}, [])
    if problems:
        doc = {}
    name = doc.get("name") if isinstance(doc, dict) else None
    return project_name(name if isinstance(name, str) else None, env)


# --- I/O edge --------------------------------------------------------------------------------


class ReleaseStore:
    """A project's releases in Consul KV."""

    def __init__(self, consul: ConsulAPI, project: str) -> None:
        self.consul = consul
        self.project = project
        self.prefix = f"nomadmesh/{project}/releases/"

    def all(self) -> list[Release]:
        """Every release, oldest first."""
        with self.consul.errors():
            _, items = self.consul.sdk.kv.get(self.prefix, recurse=True)
        out = []
        for item in items or []:
            tail = item["Key"][len(self.prefix):]
            if tail.isdigit() and item.get("Value") is not None:
                out.append(Release.from_json(item["Value"], f"Consul KV {item['Key']}"))
        return sorted(out, key=lambda r: r.number)

    def numbers(self) -> list[int]:
        """The numbers taken so far, ascending (keys only: cheap however long the history)."""
        with self.consul.errors():
            _, keys = self.consul.sdk.kv.get(self.prefix, keys=True)
        tails = (k[len(self.prefix):] for k in keys or [])
        return sorted(int(t) for t in tails if t.isdigit())

    def get(self, number: int) -> Release | None:
        key = self.prefix + str(number)
        with self.consul.errors():
            _, item = self.consul.sdk.kv.get(key)
        return None if item is None or item.get("Value") is None else Release.from_json(
            item["Value"], f"Consul KV {key}")

    def add(self, build: Callable[[int, Release | None], Release | None]) -> Release | None:
        """Store `build(next number, latest release)` under the next free number (KV cas=0: only if
        no one took it meanwhile, else read again and retry). `build` returning None stores nothing."""

        def attempt() -> tuple[bool, Release | None]:
            numbers = self.numbers()
            latest = self.get(numbers[-1]) if numbers else None
            release = build(numbers[-1] + 1 if numbers else 1, latest)
            if release is None:
                return True, None
            with self.consul.errors():
                ok = self.consul.sdk.kv.put(self.prefix + str(release.number), release.to_json(), cas=0)
            return bool(ok), release

        return retry_cas(attempt, f"recording a release under {self.prefix}")


def read_entries(consul: ConsulAPI, keys: Iterable[str]) -> dict[str, tuple[Entry | None, int]]:
    """Each `kind/name` as Consul holds it now: (entry without server fields or None, ModifyIndex or 0)."""
    out: dict[str, tuple[Entry | None, int]] = {}
    for key in keys:
        kind, name = split_key(key)
        with consul.errors():
            entry = consul.sdk.config.get(kind, name)
        out[key] = (comparable(entry), int(entry.get("ModifyIndex") or 0)) if entry else (None, 0)
    return out


def live_versions(nomad: NomadAPI, names: Iterable[str]) -> dict[str, tuple[int, dict[str, Any]]]:
    """The live version and job of each name Nomad has (purged jobs are left out)."""
    out = {}
    for name in sorted(set(names)):
        job = nomad.job(name)
        if job is not None:
            out[name] = (int(job.get("Version") or 0), job)
    return out


def snapshot(nomad: NomadAPI, consul: ConsulAPI, job_names: Iterable[str], extra_keys: Iterable[str] = ()
             ) -> tuple[dict[str, int], dict[str, Entry | None]]:
    """The live job versions and the entries of every service those jobs register or call."""
    jobs = live_versions(nomad, job_names)
    names = {n for _, job in jobs.values() for n in mesh_names(job)}
    keys = set(entry_keys(names)) | set(extra_keys)
    entries = {k: entry for k, (entry, _) in read_entries(consul, sorted(keys)).items()}
    return {name: version for name, (version, _) in jobs.items()}, entries


def record(nomad: NomadAPI, consul: ConsulAPI, project: str, job_names: Iterable[str], kind: str = "deploy",
           rolled_back_to: int | None = None, who: str | None = None,
           entry_names: Iterable[str] = ()) -> tuple[Release | None, Release | None]:
    """Record what is live now as the project's next release: the jobs named plus the previous
    release's jobs, their entries, the previous release's entries and those `entry_names` ("kind/name").
    Returns (the new release or None, the latest before it); a deploy that left everything as the
    latest release recorded it is not recorded again."""
    job_names, entry_names = list(job_names), list(entry_names)
    store = ReleaseStore(consul, project)
    previous: list[Release | None] = [None]

    def build(number: int, latest: Release | None) -> Release | None:
        previous[0] = latest
        names = set(job_names) | set(latest.jobs if latest else ())
        jobs, entries = snapshot(nomad, consul, names, [*entry_names, *(latest.entries if latest else ())])
        release = Release(number, utc_now(), who or who_am_i(), kind, jobs, entries, rolled_back_to)
        if kind == "deploy" and latest is not None and same_state(release, latest):
            return None
        return release

    return store.add(build), previous[0]


def record_deploy(target: Target, project: str, plan: Plan, report: DeployReport) -> tuple[Release | None, str]:
    """After `apply`: record the release when the deploy changed the target at all (all of it, or part
    of it before a failure). Returns (the release or None, why none was recorded); a failure to
    record is that reason, never an exception: the deploy itself happened either way."""
    if not report.ok and not any(r.version is not None and r.action in ("create", "update") for r in report.results):
        return None, "nothing was registered"
    nomad, consul = NomadAPI(target), ConsulAPI(target)
    try:
        release, latest = record(nomad, consul, project, [c.name for c in plan.changes])
    except TargetError as e:
        return None, f"release not recorded: {e}"
    finally:
        nomad.close()
        consul.close()
    if release is None:
        return None, f"unchanged since release {latest.number if latest else '?'}"
    return release, ""

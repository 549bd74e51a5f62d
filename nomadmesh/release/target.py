"""The release's I/O edge: its Consul entries (check-and-set), the service's instances by version,
and each sidecar's Envoy counters.

    entries     get / write / delete a config entry, each write CAS on the ModifyIndex last seen
                (0: must not exist); a refused CAS is someone else's change (an `abort`, an
                operator): EntryChanged, and the release stops rather than overwrite it
    instances   the service's sidecars, split into stable and canary by the meta only a canary
                registers (render.ownership.CANARY_META_KEY)
    counters    a sidecar's public-listener counters: the dev agent's
                `/v1/nomadmesh/sidecar/<id>/stats?format=prometheus` (Envoy's own Prometheus text,
                fetched inside the allocation's network namespace). A real Consul has no such
                endpoint: None, and the release says it cannot read figures there.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from nomadmesh.deploy.consul_api import ConsulAPI
from nomadmesh.errors import TargetError
from nomadmesh.release.entries import Entry
from nomadmesh.release.metrics import ENVOY_STATS_FILTER, Counters, parse_envoy
from nomadmesh.render.ownership import CANARY_META_KEY

STATS_TIMEOUT_S = 5.0
L7_PROTOCOLS = ("http", "http2", "grpc")


class EntryChanged(TargetError):
    """A config entry the release wrote was changed by someone else since (check-and-set refused)."""


@dataclass(frozen=True)
class Instances:
    stable: tuple[str, ...]  # sidecar service IDs
    canary: tuple[str, ...]
    canary_passing: int  # canary instances whose checks all pass


class ConsulSide:
    def __init__(self, consul: ConsulAPI) -> None:
        self.consul = consul

    # -- entries -------------------------------------------------------------------------------
    def entry(self, kind: str, name: str) -> Entry | None:
        with self.consul.errors():
            got = self.consul.sdk.config.get(kind, name)
        return dict(got) if got else None

    def write(self, entry: Entry, seen: Entry | None) -> Entry:
        """Write `entry` if the live one is still `seen` (None: there must be none); the entry as now stored."""
        kind, name = entry["Kind"], entry["Name"]
        with self.consul.errors():
            ok = self.consul.sdk.config.set(kind, name, entry, cas=int((seen or {}).get("ModifyIndex") or 0))
        if not ok:
            raise EntryChanged(f"{kind}/{name} was changed by someone else since the release read it; left alone")
        stored = self.entry(kind, name)
        if stored is None:
            raise EntryChanged(f"{kind}/{name} was deleted by someone else right after the release wrote it")
        return stored

    def delete(self, seen: Entry) -> None:
        kind, name = seen["Kind"], seen["Name"]
        with self.consul.errors():
            ok = self.consul.sdk.config.delete(kind, name, cas=int(seen.get("ModifyIndex") or 0))
        if not ok:
            raise EntryChanged(f"{kind}/{name} was changed by someone else since the release read it; left alone")

    def protocol(self, service: str) -> str:
        """The service's protocol as Consul decides it: its service-defaults, else proxy-defaults global, else tcp."""
        defaults = self.entry("service-defaults", service) or {}
        if defaults.get("Protocol"):
            return str(defaults["Protocol"])
        proxy = self.entry("proxy-defaults", "global") or {}
        return str((proxy.get("Config") or {}).get("protocol") or "tcp")

    # -- instances and their figures -----------------------------------------------------------
    def instances(self, service: str) -> Instances:
        apps = self.consul.get(f"/v1/health/service/{quote(service, safe='')}").data or []
        sidecars = self.consul.get(f"/v1/health/connect/{quote(service, safe='')}").data or []
        canary_ids = {a["Service"]["ID"] for a in apps
                      if (a["Service"].get("Meta") or {}).get(CANARY_META_KEY) == "true"}
        passing = {a["Service"]["ID"] for a in apps
                   if all(c.get("Status") == "passing" for c in a.get("Checks") or [])}
        stable: list[str] = []
        canary: list[str] = []
        for s in sidecars:
            target = (s["Service"].get("Proxy") or {}).get("DestinationServiceID") or ""
            (canary if target in canary_ids else stable).append(s["Service"]["ID"])
        return Instances(tuple(sorted(stable)), tuple(sorted(canary)), len(canary_ids & passing))

    def counters(self, sidecar_id: str) -> Counters | None:
        """The sidecar's counters now; None when this target does not serve them (or the sidecar is gone)."""
        api = self.consul
        url = f"{api.endpoint.url}/v1/nomadmesh/sidecar/{quote(sidecar_id, safe='')}/stats"
        try:
            resp = api.session.get(url, params={"format": "prometheus", "filter": ENVOY_STATS_FILTER},
                                   timeout=STATS_TIMEOUT_S)
        except requests.RequestException:
            return None
        if resp.status_code != 200:
            return None
        try:
            return parse_envoy(resp.text)
        except ValueError:
            return None

    def read(self, sidecar_ids: tuple[str, ...]) -> dict[str, Counters]:
        """Every sidecar's counters, read at once (each read enters a network namespace on the agent)."""
        if not sidecar_ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(8, len(sidecar_ids))) as pool:
            got = dict(zip(sidecar_ids, pool.map(self.counters, sidecar_ids), strict=True))
        return {sid: c for sid, c in got.items() if c is not None}


def deployment_summary(dep: dict[str, Any]) -> tuple[int, int, int]:
    """(canaries wanted, canaries healthy, unhealthy allocations) over a deployment's groups."""
    groups = (dep.get("TaskGroups") or {}).values()
    wanted = sum(int(g.get("DesiredCanaries") or 0) for g in groups)
    healthy = sum(min(int(g.get("HealthyAllocs") or 0), int(g.get("DesiredCanaries") or 0)) for g in groups)
    return wanted, healthy, sum(int(g.get("UnhealthyAllocs") or 0) for g in groups)

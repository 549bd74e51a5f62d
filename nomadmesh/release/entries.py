"""The Consul config entries a release writes, and what it leaves behind. Pure.

    service-resolver  the service's own (kept as it is) plus two subsets, filtered on the meta only
                      a canary registers (render.ownership.CANARY_META_KEY, from the job's canary_meta):
                          stable   Service.Meta.nomadmesh_canary != "true"
                          canary   Service.Meta.nomadmesh_canary == "true"
    service-splitter  the canary's share to `canary`, the rest to `stable`

Both carry Meta `nomadmesh-release: <release id>`: the entries are the running release's, and
`promote` / `abort` find them there. The splitter also publishes the release's progress for anyone
reading the cluster (the web UI): its steps, the current one, and the verdict on the step before
(`nomadmesh-release-steps: "10,50,100"`, `-step: "2"`, `-last: "<verdict>"`). The resolver also
says whether the release created it or amended the operator's (`nomadmesh-release-resolver`), so
the one restored afterwards is exactly the one that was there: the operator's without the two subsets, or none.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nomadmesh.mesh.policy import MAX_META_VALUE
from nomadmesh.mesh.release_marks import CANARY, LAST_KEY, RELEASE_KEY, RESOLVER_KEY, STABLE, STEP_KEY, STEPS_KEY
from nomadmesh.render.ownership import CANARY_META_KEY

Entry = dict[str, Any]
RESOLVER = "service-resolver"
SPLITTER = "service-splitter"
SUBSETS = {
    STABLE: f'Service.Meta.{CANARY_META_KEY} != "true"',
    CANARY: f'Service.Meta.{CANARY_META_KEY} == "true"',
}
_SERVER_FIELDS = ("CreateIndex", "ModifyIndex", "Hash")


def writable(entry: Mapping[str, Any]) -> Entry:
    """An entry as read, without the fields Consul sets itself."""
    return {k: v for k, v in entry.items() if k not in _SERVER_FIELDS}


def release_of(entry: Mapping[str, Any] | None) -> str | None:
    """The release an entry belongs to, or None (the operator's, or none)."""
    return (entry or {}).get("Meta", {}).get(RELEASE_KEY) if entry else None


def resolver_problem(live: Mapping[str, Any] | None) -> str | None:
    """Why the service's live resolver cannot take the release's subsets, or None."""
    if not live:
        return None
    if live.get("Redirect"):
        return "its service-resolver redirects it elsewhere, so a split of its own instances would not apply"
    clash = sorted(set(live.get("Subsets") or {}) & set(SUBSETS))
    if clash and not release_of(live):
        return f"its service-resolver already has subsets named {', '.join(clash)}, which a release uses"
    return None


def release_resolver(service: str, live: Mapping[str, Any] | None, release_id: str) -> Entry:
    """The live resolver (or a new one) with the `stable` and `canary` subsets, marked for the release."""
    base: Entry = writable(live) if live else {"Kind": RESOLVER, "Name": service}
    how = (base.get("Meta") or {}).get(RESOLVER_KEY) or ("amended" if live else "created")
    # OnlyPassing: an instance whose checks fail takes no share, even though the splitter gives its subset one.
    ours = {name: {"Filter": f, "OnlyPassing": True} for name, f in SUBSETS.items()}
    subsets = {**(base.get("Subsets") or {}), **ours}
    return {**base, "Subsets": subsets, "Meta": {**(base.get("Meta") or {}), RELEASE_KEY: release_id,
                                                RESOLVER_KEY: how}}


def restored_resolver(entry: Mapping[str, Any]) -> Entry | None:
    """What was there before the release: None when the release created the resolver."""
    meta = dict(entry.get("Meta") or {})
    if meta.pop(RESOLVER_KEY, "created") == "created":
        return None
    meta.pop(RELEASE_KEY, None)
    out = writable(entry)
    subsets = {k: v for k, v in (entry.get("Subsets") or {}).items() if k not in SUBSETS}
    out.pop("Subsets", None)
    out.pop("Meta", None)
    return {**out, **({"Subsets": subsets} if subsets else {}), **({"Meta": meta} if meta else {})}


def splitter(service: str, canary_percent: float, release_id: str,
             progress: Mapping[str, str] | None = None) -> Entry:
    """The split at `canary_percent`: a subset with no share is left out (Consul needs weights summing to 100).
    `progress`: the Meta of `step_progress`, published beside the release's id."""
    splits = [{"Weight": w, "ServiceSubset": s} for s, w in ((STABLE, 100 - canary_percent), (CANARY, canary_percent))
              if w > 0]
    return {"Kind": SPLITTER, "Name": service, "Splits": splits, "Meta": {**(progress or {}), RELEASE_KEY: release_id}}


def step_progress(steps: tuple[int, ...] | list[int], index: int, last_verdict: str = "") -> dict[str, str]:
    """The splitter's Meta saying the release is at step `index` (from 0) of `steps`, and how the step
    before was judged (cut to what Consul takes in a Meta value)."""
    meta = {STEPS_KEY: ",".join(str(s) for s in steps), STEP_KEY: str(index + 1)}
    if last_verdict:
        meta[LAST_KEY] = last_verdict[:MAX_META_VALUE]
    return meta

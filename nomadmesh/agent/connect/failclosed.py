"""What a proxy gets when Envoy refuses (NACKs) its listeners: a policy that admits nobody. Pure.

Envoy keeps the last listeners it accepted when it NACKs new ones, so without this a refused
intention update would leave the proxy on its older, possibly more permissive, policy for as long
as the refusal lasts. Instead the cache serves the same proxy with its intentions replaced by
"deny everyone" (default deny, no intentions: an ALLOW RBAC without policies), built by the same
pure builders as every other snapshot:

    level 1  the public listener denies every caller; upstream and exposed-path listeners as usual
    level 2  (if level 1 is refused too) only the deny-all public listener, nothing else

The next snapshot that differs (a new intention write, a catalog change) is tried again as
usual, so the proxy recovers by itself as soon as a policy Envoy accepts is written.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from nomadmesh.agent.connect.snapshot import ProxySnapshot

MAX_LEVEL = 2


def fail_closed_snapshot(snap: ProxySnapshot, level: int) -> ProxySnapshot:
    """`snap` with a public listener that admits nobody (level 1), and no other listener (level 2)."""
    if level < 1 or level > MAX_LEVEL:
        raise ValueError(f"fail-closed level must be 1..{MAX_LEVEL}, not {level}")
    closed = replace(snap, intentions=(), default_allow=False)
    if level == 2:
        closed = replace(closed, upstreams=(), exposed_paths=())
    return closed


@dataclass(frozen=True)
class Nack:
    """Envoy's last refusal for one proxy: what it refused, why, and since when (epoch seconds)."""

    type_url: str
    version: str
    names: tuple[str, ...]  # the resources of the refused version (Envoy names the failing ones in detail)
    detail: str
    since: float
    resolved_at: float | None = None  # when a later version of that type was accepted

    def to_json(self) -> dict[str, object]:
        return {"TypeURL": self.type_url, "Type": self.type_url.rsplit(".", 1)[-1], "Version": self.version,
                "Names": list(self.names), "Detail": self.detail, "Since": self.since,
                "ResolvedAt": self.resolved_at}

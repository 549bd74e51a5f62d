"""A sidecar's live figures from its Envoy admin `/stats`. Pure: text in, figures out.

Which Envoy stats mean what, for the listeners and clusters our resource builders make
(resources/listeners.py, resources/rbac.py):

    active / total connections  listener.<bind addr>_<port>.downstream_cx_{active,total}  (public listener)
    TLS handshakes              listener.<bind addr>_<port>.ssl.handshake
    TLS failures                listener.<bind addr>_<port>.ssl.{connection_error,fail_verify_*}
    RBAC allowed / denied       connect_authz.rbac.{allowed,denied}     (TCP: the network RBAC filter)
                                http.public_listener.rbac.{allowed,denied}  (HTTP: the HTTP RBAC filter)
    requests                    http.public_listener.downstream_rq_total (HTTP); on a TCP listener
                                each authorised connection is one call, so RBAC allowed + denied
    upstreams                   cluster.<dest>.<ns>.<dc>.internal.<trust domain>.upstream_{cx,rq}_*
    uptime                      server.uptime (a gauge Envoy refreshes at each stats flush, ~5 s)

`STATS_FILTER` is the regex passed as `/stats?filter=` so the admin answers only these (a few KB
instead of ~70 KB). `parse_stats` takes either the text or the `format=json` answer.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

STATS_FILTER = (r"^(listener\.[\d.]+_\d+\.(downstream_cx_(active|total)|ssl\.)"
                r"|(http|tcp)\.public_listener\.(downstream_(cx|rq)_(active|total)|rbac\.)"
                r"|connect_authz\.rbac\."
                r"|cluster\..*\.upstream_(cx|rq)_(active|total)$"
                r"|server\.uptime$)")
TLS_FAILURES = ("ssl.connection_error", "ssl.fail_verify_no_cert", "ssl.fail_verify_error",
                "ssl.fail_verify_san", "ssl.fail_verify_cert_hash")
NETWORK_RBAC_PREFIX = "connect_authz.rbac."  # resources/rbac.py STAT_PREFIX
PUBLIC_STAT_PREFIX = "public_listener"  # resources/listeners.py stat_prefix of the public listener


@dataclass(frozen=True)
class UpstreamFigures:
    destination: str
    cluster: str
    active_connections: int
    connections_total: int
    requests_total: int


@dataclass(frozen=True)
class SidecarFigures:
    protocol: str  # "http" or "tcp", as the public listener's filters show
    public_listener: str  # "0.0.0.0:21000"
    active_connections: int
    connections_total: int
    requests_total: int  # received, RBAC's refusals included
    tls_handshakes: int
    tls_failures: int
    rbac_allowed: int
    rbac_denied: int
    upstreams: tuple[UpstreamFigures, ...]
    uptime_s: int

    @property
    def requests_served(self) -> int:
        """Requests that reached the service: those received less those RBAC refused (HTTP: a 403
        from the sidecar itself; TCP: a connection closed before the service saw it)."""
        return max(0, self.requests_total - self.rbac_denied)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "requests_served": self.requests_served}


def parse_stats(body: str) -> dict[str, int]:
    """Numeric stats (counters and gauges) of an admin `/stats` answer, text or JSON.

    Text-valued stats (`version_text`) and histograms are left out: no figure uses them.
    """
    stripped = body.lstrip()
    out: dict[str, int] = {}
    if stripped.startswith("{"):
        for entry in json.loads(stripped).get("stats") or []:
            value = entry.get("value")
            if "name" in entry and isinstance(value, int) and not isinstance(value, bool):
                out[entry["name"]] = value
        return out
    for line in body.splitlines():
        name, sep, value = line.partition(": ")
        if sep and re.fullmatch(r"-?\d+", value.strip()):
            out[name] = int(value)
    return out


def _listener_prefix(address: str, port: int) -> str:
    # Envoy names a listener's stats after its address with ':' as '_': listener.0.0.0.0_21000.
    return f"listener.{address}_{port}."


def _clusters(stats: dict[str, int]) -> set[str]:
    out = set()
    for name in stats:
        m = re.fullmatch(r"cluster\.(.+)\.upstream_(cx|rq)_(active|total)", name)
        if m:
            out.add(m.group(1))
    return out


def cluster_destination(cluster: str) -> str:
    """The service of an upstream cluster `[<subset>.]<service>.default.<dc>.internal.<td>` ("" if
    it is not one): a resolver subset's cluster counts for its service."""
    head, sep, _ = cluster.partition(".internal.")
    parts = head.split(".")
    return parts[-3] if sep and len(parts) in (3, 4) and parts[-2] == "default" else ""


def figures(stats: dict[str, int], public_port: int, upstreams: Iterable[str],
            public_address: str = "0.0.0.0") -> SidecarFigures:
    """The figures of one sidecar from its parsed stats.

    `public_port` is the public listener's port inside the namespace (the registration's
    Proxy.Config.bind_port); `upstreams` the declared destination names, whose clusters are
    `[<subset>.]<destination>.<namespace>.<dc>.internal.<trust domain>` (one per discovery-chain
    target, so a split upstream has a row per subset).
    """
    lst = _listener_prefix(public_address, public_port)
    http = f"http.{PUBLIC_STAT_PREFIX}."
    is_http = any(name.startswith(http) for name in stats)
    rbac = f"{http}rbac." if is_http else NETWORK_RBAC_PREFIX
    allowed, denied = stats.get(rbac + "allowed", 0), stats.get(rbac + "denied", 0)
    requests = stats.get(http + "downstream_rq_total", 0) if is_http else allowed + denied
    wanted = set(upstreams)
    ups = []
    for cluster in sorted(_clusters(stats)):
        dest = cluster_destination(cluster)
        if dest not in wanted:  # local_app, local_agent, exposed paths, undeclared
            continue
        c = f"cluster.{cluster}."
        ups.append(UpstreamFigures(dest, cluster, stats.get(c + "upstream_cx_active", 0),
                                   stats.get(c + "upstream_cx_total", 0), stats.get(c + "upstream_rq_total", 0)))
    return SidecarFigures(
        protocol="http" if is_http else "tcp",
        public_listener=f"{public_address}:{public_port}",
        active_connections=stats.get(lst + "downstream_cx_active", 0),
        connections_total=stats.get(lst + "downstream_cx_total", 0),
        requests_total=requests,
        tls_handshakes=stats.get(lst + "ssl.handshake", 0),
        tls_failures=sum(stats.get(lst + f, 0) for f in TLS_FAILURES),
        rbac_allowed=allowed,
        rbac_denied=denied,
        upstreams=tuple(ups),
        uptime_s=stats.get("server.uptime", 0),
    )

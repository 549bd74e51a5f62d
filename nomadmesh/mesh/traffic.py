"""Traffic figures of the mesh over a short window, from samples of its sidecars' Envoy stats. Pure.

A `Sample` is one read of a sidecar's Envoy admin `/stats?format=json&histogram_buckets=cumulative`
(`parse_envoy_json`): counters by Envoy's own stat names, and histograms as cumulative bucket counts.
Two samples of the same sidecar, the oldest and the newest within the window, give rates (counter
delta / seconds) and latency percentiles (bucket deltas, interpolated within a bucket the way
Prometheus' `histogram_quantile` does). The dev agent keeps a small ring of samples per sidecar and
calls `figures`; the Prometheus path (`mesh.promql`) computes the same `Figures` with PromQL.

Which stats mean what, for the listeners the agent's xDS builders name (agent/connect/resources):

    inbound requests   http.public_listener.downstream_rq_{total,1xx..5xx}, downstream_rq_time (HTTP)
                       on a TCP public listener each authorised connection is one call: RBAC allowed
    RBAC denials       http.public_listener.rbac.denied (HTTP) or connect_authz.rbac.denied (TCP)
    TLS failures       listener.<addr>_<port>.ssl.{connection_error,fail_verify_*} (public listener)
    edge (source side) tcp.upstream.<dest>.<ns>.<partition>.<dc>.downstream_cx_total (a TCP upstream
                       listener: connections), or http.upstream.<dest>...downstream_rq_* when the
                       upstream listener speaks HTTP; cluster.<dest>.<...>.upstream_cx_connect_fail;
                       cluster.<dest>.<...>.ssl.{connection_error,fail_verify_*}: the TLS failures the
                       caller's sidecar met on this edge (the destination's listener counts its own
                       for all callers together)

A source-side TCP listener cannot see HTTP statuses. When the destination has a single caller, its
inbound statuses, denials and latency are that edge's, and the edge says so (`measured_at`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Buckets = tuple[tuple[float, float], ...]  # (upper bound in ms, cumulative count), ascending

WINDOW_S = 60.0
TLS_FAILURES = ("ssl.connection_error", "ssl.fail_verify_no_cert", "ssl.fail_verify_error",
                "ssl.fail_verify_san", "ssl.fail_verify_cert_hash")
# What a sampler asks Envoy for (`/stats?filter=`): a few KB rather than all of its stats.
STATS_FILTER = (r"^(http\.(public_listener|upstream\.[^.]+\.[^.]+\.[^.]+\.[^.]+)\."
                r"(downstream_rq_(total|[1-5]xx|time)|rbac\.(allowed|denied))$"
                r"|tcp\.upstream\.[^.]+\.[^.]+\.[^.]+\.[^.]+\.downstream_cx_total$"
                r"|connect_authz\.rbac\.(allowed|denied)$"
                r"|listener\.[\d.]+_\d+\.ssl\.(connection_error|fail_verify_.*)$"
                r"|cluster\.[^.]+\.[^.]+\.[^.]+\.internal\..*\.(upstream_cx_connect_fail|ssl\.(connection_error"
                r"|fail_verify_.*))$)")
_UPSTREAM = re.compile(r"^(tcp|http)\.upstream\.([^.]+)\.[^.]+\.[^.]+\.[^.]+\.(.+)$")
_CONNECT_FAIL = re.compile(r"^cluster\.([^.]+)\.[^.]+\.[^.]+\.internal\..*\.upstream_cx_connect_fail$")
_TLS = re.compile(r"^listener\.[\d.]+_\d+\.(ssl\..+)$")
_CLUSTER_TLS = re.compile(r"^cluster\.([^.]+)\.[^.]+\.[^.]+\.internal\..*\.(ssl\..+)$")


@dataclass(frozen=True)
class Sample:
    at: float  # seconds (monotonic where taken)
    counters: Mapping[str, float]  # Envoy counts; increases over a window from Prometheus
    histograms: Mapping[str, Buckets] = field(default_factory=dict)


def parse_envoy_json(body: str) -> tuple[dict[str, int], dict[str, Buckets]]:
    """Counters and cumulative histogram buckets of `/stats?format=json&histogram_buckets=cumulative`."""
    counters: dict[str, int] = {}
    histograms: dict[str, Buckets] = {}
    for entry in json.loads(body).get("stats") or []:
        if "histograms" in entry:
            for h in entry["histograms"] if isinstance(entry["histograms"], list) else []:
                histograms[h["name"]] = tuple((float(b["upper_bound"]), int(b["cumulative"]))
                                              for b in h.get("buckets") or [])
        elif isinstance(entry.get("value"), int) and not isinstance(entry["value"], bool):
            counters[entry["name"]] = entry["value"]
    return counters, histograms


def delta(first: Sample, last: Sample, name: str) -> float:
    """How much counter `name` grew; a counter that went down means Envoy restarted: its new value."""
    a, b = first.counters.get(name, 0), last.counters.get(name, 0)
    return b - a if b >= a else b


def bucket_delta(first: Sample, last: Sample, name: str) -> Buckets:
    new = last.histograms.get(name, ())
    old = dict(first.histograms.get(name, ()))
    out = tuple((ub, c - old.get(ub, 0)) for ub, c in new)
    return new if any(c < 0 for _, c in out) else out  # restarted: everything is new


def merge(buckets: Iterable[Buckets]) -> Buckets:
    total: dict[float, float] = {}
    for bs in buckets:
        for ub, c in bs:
            total[ub] = total.get(ub, 0) + c
    return tuple(sorted(total.items()))


def quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile (0..1) of cumulative `buckets`, linear within the bucket it falls in (as
    Prometheus' histogram_quantile); None without observations. Beyond the last bound: that bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for ub, cum in buckets:
        if cum >= rank and cum > below:
            return lower + (ub - lower) * (rank - below) / (cum - below)
        lower, below = ub, cum
    return buckets[-1][0]


@dataclass(frozen=True)
class Inbound:
    """What a sidecar's public listener saw over the window (summed over a service's sidecars)."""
    requests: float = 0
    by_class: tuple[float, float, float, float, float] = (0, 0, 0, 0, 0)  # 1xx..5xx (HTTP only)
    rbac_denied: float = 0
    tls_failures: float = 0
    latency: Buckets = ()
    http: bool = False


@dataclass(frozen=True)
class Outbound:
    """What a source sidecar's upstream listener for one destination saw over the window."""
    connections: float = 0
    connect_failures: float = 0
    requests: float = 0  # HTTP upstream listener only
    by_class: tuple[float, float, float, float, float] = (0, 0, 0, 0, 0)
    latency: Buckets = ()
    http: bool = False
    tls_failures: float | None = None  # None: the caller's Envoy has no TLS counters for this upstream


def inbound(first: Sample, last: Sample) -> Inbound:
    http = any(n.startswith("http.public_listener.") for n in last.counters)
    p = "http.public_listener."
    classes = tuple(delta(first, last, f"{p}downstream_rq_{k}xx") for k in range(1, 6))
    denied = delta(first, last, f"{p}rbac.denied" if http else "connect_authz.rbac.denied")
    requests = (delta(first, last, f"{p}downstream_rq_total") if http
                else delta(first, last, "connect_authz.rbac.allowed") + denied)
    tls = sum(delta(first, last, n) for n in last.counters if (m := _TLS.match(n)) and m.group(1) in TLS_FAILURES)
    return Inbound(requests, classes if http else (0, 0, 0, 0, 0), denied, tls,  # type: ignore[arg-type]
                   bucket_delta(first, last, f"{p}downstream_rq_time") if http else (), http)


def outbound(first: Sample, last: Sample) -> dict[str, Outbound]:
    """Per destination name."""
    prefixes: dict[str, tuple[str, str]] = {}  # destination -> (kind, stat prefix)
    for n in last.counters:
        m = _UPSTREAM.match(n)
        if m and (m.group(1) == "http" or m.group(2) not in prefixes):
            prefixes[m.group(2)] = (m.group(1), n[: len(n) - len(m.group(3))])
    fails: dict[str, float] = {}
    for n in last.counters:
        m = _CONNECT_FAIL.match(n)
        if m:
            fails[m.group(1)] = fails.get(m.group(1), 0) + delta(first, last, n)
    tls: dict[str, float] = {}
    for n in last.counters:
        m = _CLUSTER_TLS.match(n)
        if m and m.group(2) in TLS_FAILURES:
            tls[m.group(1)] = tls.get(m.group(1), 0) + delta(first, last, n)
    out: dict[str, Outbound] = {}
    for dest, (kind, p) in prefixes.items():
        if kind == "http":
            out[dest] = Outbound(
                connections=0, connect_failures=fails.get(dest, 0),
                requests=delta(first, last, f"{p}downstream_rq_total"),
                by_class=tuple(delta(first, last, f"{p}downstream_rq_{k}xx") for k in range(1, 6)),  # type: ignore[arg-type]
                latency=bucket_delta(first, last, f"{p}downstream_rq_time"), http=True, tls_failures=tls.get(dest))
        else:
            out[dest] = Outbound(connections=delta(first, last, f"{p}downstream_cx_total"),
                                 connect_failures=fails.get(dest, 0), tls_failures=tls.get(dest))
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _shares(by_class: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    answered = sum(by_class)
    if not answered:
        return None, None, None
    return (round((by_class[0] + by_class[1] + by_class[2]) / answered, 4), round(by_class[3] / answered, 4),
            round(by_class[4] / answered, 4))


@dataclass(frozen=True)
class EdgeFigures:
    """One edge `source → destination` over `window_s`. Shares are of answered requests (None: none)."""
    source: str
    destination: str
    window_s: float
    rps: float  # HTTP requests/s; on a TCP edge, connections/s (each call one connection)
    unit: str  # "requests" or "connections"
    share_2xx: float | None = None  # 1xx-3xx: answered without error
    share_4xx: float | None = None  # includes RBAC's 403s on an HTTP destination
    share_5xx: float | None = None
    error_share: float | None = None  # 4xx + 5xx (HTTP); refused / attempted (TCP)
    rbac_denied_per_s: float | None = None
    connect_failures_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    measured_at: str = "source"  # "source" | "destination" (its only caller: statuses, denials, latency)
    tls_failures_per_s: float | None = None  # met by the caller's sidecar on this edge; None: not measured

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ServiceFigures:
    """What a service's sidecars received over `window_s` (None: no sidecar sampled)."""
    name: str
    window_s: float
    sidecars: int
    protocol: str  # "http" | "tcp"
    rps: float
    share_2xx: float | None
    share_4xx: float | None
    share_5xx: float | None
    error_share: float | None
    rbac_denied_per_s: float
    tls_failures_per_s: float
    p50_ms: float | None
    p99_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Figures:
    source: str  # where they come from: "dev agent (Envoy admin stats)", "prometheus http://..."
    window_s: float
    edges: tuple[EdgeFigures, ...]
    services: tuple[ServiceFigures, ...]

    def edge(self, source: str, destination: str) -> EdgeFigures | None:
        return next((e for e in self.edges if (e.source, e.destination) == (source, destination)), None)

    def service(self, name: str) -> ServiceFigures | None:
        return next((s for s in self.services if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "window_s": self.window_s, "edges": [e.to_json() for e in self.edges],
                "services": [s.to_json() for s in self.services]}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Figures:
        return cls(str(body.get("source", "")), float(body.get("window_s") or 0),
                   tuple(EdgeFigures(**e) for e in body.get("edges") or []),
                   tuple(ServiceFigures(**s) for s in body.get("services") or []))


@dataclass(frozen=True)
class SidecarWindow:
    """A sidecar's first and last sample within the window, with what it is."""
    service: str
    upstreams: tuple[str, ...]
    first: Sample
    last: Sample


def _per_s(n: float, seconds: float) -> float:
    return round(n / seconds, 3) if seconds > 0 else 0.0


def _inbound_sum(parts: Sequence[Inbound]) -> Inbound:
    return Inbound(sum(p.requests for p in parts),
                   tuple(sum(p.by_class[k] for p in parts) for k in range(5)),  # type: ignore[arg-type]
                   sum(p.rbac_denied for p in parts), sum(p.tls_failures for p in parts),
                   merge(p.latency for p in parts), any(p.http for p in parts))


def figures(windows: Sequence[SidecarWindow], source: str) -> Figures:
    """Per service (inbound, summed over its sidecars) and per declared edge (outbound), over the
    longest span the windows cover."""
    span = max((w.last.at - w.first.at for w in windows), default=0.0)
    ins: dict[str, list[Inbound]] = {}
    outs: dict[tuple[str, str], list[Outbound]] = {}
    seconds: dict[str, float] = {}
    for w in windows:
        s = w.last.at - w.first.at
        seconds[w.service] = max(seconds.get(w.service, 0.0), s)
        ins.setdefault(w.service, []).append(inbound(w.first, w.last))
        seen = outbound(w.first, w.last)
        for dest in w.upstreams:
            outs.setdefault((w.service, dest), []).append(seen.get(dest, Outbound()))
    services: list[ServiceFigures] = []
    summed: dict[str, Inbound] = {}
    for name in sorted(ins):
        i = summed[name] = _inbound_sum(ins[name])
        t = seconds[name]
        s2, s4, s5 = _shares(i.by_class) if i.http else (None, None, None)
        err = (None if s4 is None or s5 is None else round(s4 + s5, 4)) if i.http else (
            round(i.rbac_denied / i.requests, 4) if i.requests else None)
        services.append(ServiceFigures(
            name, round(t, 3), len(ins[name]), "http" if i.http else "tcp", _per_s(i.requests, t), s2, s4, s5, err,
            _per_s(i.rbac_denied, t), _per_s(i.tls_failures, t),
            _ms(quantile(0.5, i.latency)), _ms(quantile(0.99, i.latency))))
    callers: dict[str, int] = {}
    for _, dest in outs:
        callers[dest] = callers.get(dest, 0) + 1
    edges: list[EdgeFigures] = []
    for (src, dest), parts in sorted(outs.items()):
        t = seconds[src]
        measured_tls = [p.tls_failures for p in parts if p.tls_failures is not None]
        o = Outbound(sum(p.connections for p in parts), sum(p.connect_failures for p in parts),
                     sum(p.requests for p in parts),
                     tuple(sum(p.by_class[k] for p in parts) for k in range(5)),  # type: ignore[arg-type]
                     merge(p.latency for p in parts), any(p.http for p in parts),
                     sum(measured_tls) if measured_tls else None)
        tls_per_s = None if o.tls_failures is None else _per_s(o.tls_failures, t)
        dest_in = summed.get(dest)
        only_caller = dest_in is not None and callers[dest] == 1
        if o.http:
            s2, s4, s5 = _shares(o.by_class)
            # RBAC denies at the destination's sidecar: its denials are this edge's when it is the only caller.
            denied = next(s.rbac_denied_per_s for s in services if s.name == dest) if only_caller else None
            edges.append(EdgeFigures(src, dest, round(t, 3), _per_s(o.requests, t), "requests", s2, s4, s5,
                                     None if s4 is None or s5 is None else round(s4 + s5, 4), denied,
                                     _per_s(o.connect_failures, t), _ms(quantile(0.5, o.latency)),
                                     _ms(quantile(0.99, o.latency)), tls_failures_per_s=tls_per_s))
            continue
        if only_caller:  # its only caller: the destination's view is this edge's
            d = next(s for s in services if s.name == dest)
            http = d.protocol == "http"
            edges.append(EdgeFigures(src, dest, round(t, 3), d.rps if http else _per_s(o.connections, t),
                                     "requests" if http else "connections", d.share_2xx, d.share_4xx,
                                     d.share_5xx, d.error_share, d.rbac_denied_per_s,
                                     _per_s(o.connect_failures, t), d.p50_ms, d.p99_ms, "destination", tls_per_s))
        else:
            edges.append(EdgeFigures(src, dest, round(t, 3), _per_s(o.connections, t), "connections",
                                     connect_failures_per_s=_per_s(o.connect_failures, t),
                                     tls_failures_per_s=tls_per_s))
    return Figures(source, round(span, 3), tuple(edges), tuple(services))


def window_of(samples: Sequence[Sample], now: float, window_s: float = WINDOW_S) -> tuple[Sample, Sample] | None:
    """The oldest sample no older than `window_s` and the newest; None with fewer than two."""
    recent = [s for s in samples if now - s.at <= window_s]
    if len(recent) < 2:
        return None
    return recent[0], recent[-1]

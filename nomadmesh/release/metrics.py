"""A version's figures from its sidecars' Envoy metrics, in Prometheus' text format. Pure.

Each sidecar's public listener is an HTTP connection manager with the stat prefix
`public_listener` (the inbound side: every request the instance answered, from any caller):

    envoy_http_downstream_rq_xx{envoy_response_code_class="5", envoy_http_conn_manager_prefix="public_listener"}
    envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener", le="25"}   (ms)

These are Envoy's own `/stats/prometheus` names (what Prometheus scrapes from a sidecar on a real
cluster). Counters only grow, so a version's figures over an interval are the difference of two
reads, summed over its instances: requests = answers of every class, errors = 5xx, and p99 from
the latency histogram's bucket differences, interpolated inside a bucket as Prometheus'
histogram_quantile does. A sidecar whose counters went down restarted: its current values count.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from nomadmesh.release.decide import Figures

PREFIX_LABEL = "envoy_http_conn_manager_prefix"
PUBLIC_PREFIX = "public_listener"
# Envoy's admin `filter` (a regex over stat names) for just these: a few lines instead of thousands.
ENVOY_STATS_FILTER = r"^http\.public_listener\.downstream_rq_([1-5]xx|time)$"


@dataclass(frozen=True)
class Counters:
    """One sidecar's cumulative counters at one read."""

    answered: int = 0  # requests answered, every status class
    errors: int = 0  # answered 5xx
    buckets: tuple[tuple[float, int], ...] = field(default_factory=tuple)  # (le in ms, cumulative count), sorted


def parse_envoy(text: str) -> Counters:
    """The public listener's counters from Envoy's `/stats/prometheus` text; ValueError if it is not that format."""
    answered = errors = 0
    buckets: dict[float, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get(PREFIX_LABEL) != PUBLIC_PREFIX:
                continue
            # By family: the parser names a counter's samples `<name>_total`, whatever the text said.
            if family.name == "envoy_http_downstream_rq_xx":
                answered += int(sample.value)
                if sample.labels.get("envoy_response_code_class") == "5":
                    errors += int(sample.value)
            elif family.name == "envoy_http_downstream_rq_time" and sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0) + int(sample.value)
    return Counters(answered, errors, tuple(sorted(buckets.items())))


def _delta(now: Counters, before: Counters | None) -> Counters:
    if before is None or now.answered < before.answered or now.errors < before.errors:
        return now  # new, or restarted since the last read: everything it counts is in the interval
    old = dict(before.buckets)
    return Counters(now.answered - before.answered, now.errors - before.errors,
                    tuple((le, max(0, n - old.get(le, 0))) for le, n in now.buckets))


def quantile(q: float, buckets: tuple[tuple[float, int], ...]) -> float | None:
    """The q-quantile of a cumulative histogram (upper bounds, counts) as Prometheus' histogram_quantile
    computes it: linear inside the bucket it falls in; the highest finite bound when it falls in +Inf."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def interval_figures(now: Mapping[str, Counters], before: Mapping[str, Counters]) -> Figures:
    """A version's figures between two reads of its sidecars (by sidecar ID)."""
    deltas = [_delta(c, before.get(sid)) for sid, c in now.items()]
    merged: dict[float, int] = {}
    for d in deltas:
        for le, n in d.buckets:
            merged[le] = merged.get(le, 0) + n
    p99_ms = quantile(0.99, tuple(sorted(merged.items())))
    return Figures(requests=sum(d.answered for d in deltas), errors=sum(d.errors for d in deltas),
                   p99_s=p99_ms / 1000 if p99_ms is not None else None)

"""The agent's telemetry, kept as Consul keeps it (go-metrics' in-memory sink) and shaped as Consul shows it.

Samples (timings, in milliseconds) and counters are aggregated per 10-second interval, as go-metrics'
InmemSink does; `GET /v1/agent/metrics` shows the last finished interval (the current one while
there is no other), with each aggregate's Count, Rate (sum per second), Sum, Min, Max, Mean and
Stddev. Gauges are read when asked (they are counts of what the state holds). For
`?format=prometheus` the same names are flattened (`consul.api.http` -> `consul_api_http`), samples
become summaries and counters counters, both cumulative since the start as a Prometheus scrape
expects; prometheus_client writes the exposition format.
"""
from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

INTERVAL_S = 10.0  # go-metrics' default interval in Consul's agent
Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable


@dataclass
class Aggregate:
    """go-metrics' AggregateSample: running count, sum, sum of squares, min and max."""
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.squares += value * value
        self.low, self.high = min(self.low, value), max(self.high, value)

    def json(self, name: str, labels: Labels, interval_s: float) -> dict[str, Any]:
        mean = self.total / self.count if self.count else 0.0
        variance = (self.squares - self.count * mean * mean) / (self.count - 1) if self.count > 1 else 0.0
        return {"Name": name, "Count": self.count, "Rate": self.total / interval_s, "Sum": self.total,
                "Min": self.low if self.count else 0.0, "Max": self.high if self.count else 0.0, "Mean": mean,
                "Stddev": math.sqrt(max(variance, 0.0)), "Labels": dict(labels)}


@dataclass
class _Interval:
    start: float
    samples: dict[tuple[str, Labels], Aggregate] = field(default_factory=dict)
    counters: dict[tuple[str, Labels], Aggregate] = field(default_factory=dict)


@dataclass(frozen=True)
class Gauge:
    name: str
    value: float
    labels: Labels = ()


class MetricsSink:
    """Thread-safe: the HTTP loop, its executor and the DNS threads all record into it."""

    def __init__(self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.time) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._intervals: list[_Interval] = []  # the previous one and the current one
        self._totals: dict[tuple[str, str, Labels], Aggregate] = {}  # (kind, name, labels), for Prometheus

    def add_sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._record("sample", name, value, labels)

    def incr_counter(self, name: str, value: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self._record("counter", name, value, labels)

    def _record(self, kind: str, name: str, value: float, labels: dict[str, str] | None) -> None:
        key = (name, tuple(sorted((labels or {}).items())))
        with self._lock:
            interval = self._current()
            table = interval.samples if kind == "sample" else interval.counters
            table.setdefault(key, Aggregate()).add(value)
            self._totals.setdefault((kind, *key), Aggregate()).add(value)

    def _current(self) -> _Interval:
        start = math.floor(self._clock() / self.interval_s) * self.interval_s
        if not self._intervals or self._intervals[-1].start != start:
            self._intervals = [*self._intervals[-1:], _Interval(start)]
        return self._intervals[-1]

    def display(self, gauges: Iterable[Gauge]) -> dict[str, Any]:
        """The body of `GET /v1/agent/metrics`."""
        with self._lock:
            self._current()
            interval = self._intervals[-2] if len(self._intervals) > 1 else self._intervals[-1]
            samples = [agg.json(n, lb, self.interval_s) for (n, lb), agg in sorted(interval.samples.items())]
            counters = [agg.json(n, lb, self.interval_s) for (n, lb), agg in sorted(interval.counters.items())]
        # Go's time.Time.String() of the interval's start, as Consul prints it
        stamp = dt.datetime.fromtimestamp(interval.start, dt.UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
        return {"Timestamp": stamp,
                "Gauges": [{"Name": g.name, "Value": g.value, "Labels": dict(g.labels)} for g in gauges],
                "Points": [], "Counters": counters, "Samples": samples}

    def prometheus(self, gauges: Iterable[Gauge]) -> bytes:
        """The Prometheus text exposition of the gauges and the cumulative samples and counters."""
        families: dict[tuple[str, str], Metric] = {}
        for g in gauges:
            labels = dict(g.labels)
            fam = families.setdefault(("gauge", g.name), GaugeMetricFamily(
                _flat(g.name), g.name, labels=sorted(labels)))
            assert isinstance(fam, GaugeMetricFamily)
            fam.add_metric([labels[k] for k in sorted(labels)], g.value)
        with self._lock:
            totals = sorted(self._totals.items())
        for (kind, name, labels_t), agg in totals:
            labels = dict(labels_t)
            names = sorted(labels)
            if kind == "sample":
                summary = families.setdefault((kind, name), SummaryMetricFamily(_flat(name), name, labels=names))
                assert isinstance(summary, SummaryMetricFamily)
                summary.add_metric([labels[k] for k in names], count_value=agg.count, sum_value=agg.total)
            else:
                counter = families.setdefault((kind, name), CounterMetricFamily(_flat(name), name, labels=names))
                assert isinstance(counter, CounterMetricFamily)
                counter.add_metric([labels[k] for k in names], agg.total)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(list(families.values())))
        return generate_latest(registry)


class _Fixed:
    """A prometheus_client collector of metric families computed beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self._families)


def _flat(name: str) -> str:
    """go-metrics' Prometheus sink flattening: every character outside [a-zA-Z0-9_] becomes '_'."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)

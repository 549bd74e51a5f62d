"""The release's figures from Prometheus (`nomadmesh release --metrics-url URL`), for clusters where
the sidecars' Envoy admin is out of reach.

Prometheus scrapes each sidecar's Envoy metrics (`envoy_prometheus_bind_addr`) and must label every
series with the sidecar's Consul service ID, `consul_service_id` (with Consul service discovery:
relabel `__meta_consul_service_id`; the README shows the scrape config). The release tells stable
from canary instances in Consul's catalog as it does on the dev agent, then asks Prometheus for
those sidecars' cumulative public-listener counters (instant queries, the latest scrape):

    sum by (consul_service_id, envoy_response_code_class) (envoy_http_downstream_rq_xx{...})
    sum by (consul_service_id, le) (envoy_http_downstream_rq_time_bucket{...})

They become the same per-sidecar `Counters` the dev agent's stats give, so the interval figures,
restarts and the verdict come from the same pure code (metrics.py, decide.py). The figures are as
fresh as the last scrape: an --interval of several scrape intervals keeps that lag small.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from nomadmesh.errors import TargetError
from nomadmesh.release.metrics import Counters
from nomadmesh.ui.promql import PUBLIC, MetricsError, query

ID_LABEL = "consul_service_id"
ANSWERED = "sum by ({id}, envoy_response_code_class) (envoy_http_downstream_rq_xx{{{public},{id}=~\"{ids}\"}})"
LATENCY = "sum by ({id}, le) (envoy_http_downstream_rq_time_bucket{{{public},{id}=~\"{ids}\"}})"


def _promql(template: str, sidecar_ids: Iterable[str]) -> str:
    ids = "|".join(re.escape(s).replace("\\", "\\\\") for s in sidecar_ids)  # a regex inside a PromQL string
    return template.format(id=ID_LABEL, public=PUBLIC, ids=ids)


Rows = Iterable[Mapping[str, Any]]


def counters_from_rows(answered: Rows, latency: Rows) -> dict[str, Counters]:
    """Per sidecar ID, its counters from the two queries' result rows. Pure."""
    totals: dict[str, list[int]] = {}
    buckets: dict[str, dict[float, int]] = {}
    for row in answered:
        m, n = row.get("metric") or {}, _count(row)
        if m.get(ID_LABEL):
            t = totals.setdefault(m[ID_LABEL], [0, 0])
            t[0] += n
            t[1] += n if m.get("envoy_response_code_class") == "5" else 0
    for row in latency:
        m = row.get("metric") or {}
        if m.get(ID_LABEL) and m.get("le"):
            buckets.setdefault(m[ID_LABEL], {})[float(m["le"])] = _count(row)
    return {sid: Counters(t[0], t[1], tuple(sorted(buckets.get(sid, {}).items()))) for sid, t in totals.items()}


def _count(row: Mapping[str, Any]) -> int:
    v = float(row["value"][1])
    return int(v) if v == v else 0  # NaN: no sample


class PrometheusCounters:
    """`read(sidecar_ids)` as ConsulSide's, from the Prometheus at `base_url`."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url, self.session = base_url, session or requests.Session()

    def read(self, sidecar_ids: tuple[str, ...]) -> dict[str, Counters]:
        """The sidecars' counters at Prometheus' latest scrape; a sidecar not scraped yet is left out.
        A TargetError when Prometheus cannot answer: the release ends as on any target failure."""
        if not sidecar_ids:
            return {}
        try:
            answered = query(self.session, self.base_url, _promql(ANSWERED, sidecar_ids))
            latency = query(self.session, self.base_url, _promql(LATENCY, sidecar_ids))
        except MetricsError as e:
            raise TargetError(f"Prometheus: {e}") from None
        return counters_from_rows(answered, latency)

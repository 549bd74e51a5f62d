"""Traffic figures from Prometheus (`nomadmesh ui|top --metrics-url URL`), for real clusters.

Prometheus scrapes each sidecar's Envoy metrics where Consul's `envoy_prometheus_bind_addr` proxy
config serves them (`/metrics`, i.e. the admin's `/stats/prometheus`). The metric families and labels
are the ones Consul's UI queries with its Prometheus metrics provider: `envoy_http_downstream_rq_xx`
by `envoy_response_code_class` and `envoy_http_downstream_rq_time_bucket` on the public listener
(`envoy_http_conn_manager_prefix="public_listener"`), `envoy_tcp_downstream_cx_total` on upstream
listeners, each series carrying `local_cluster` (the service whose sidecar it is; Consul's
bootstrap tag, ours too: connect/envoy.py) and the upstream's `consul_upstream_service`.

Each is asked as `sum by (...) (increase(<metric>[<window>]))`: the counts over the window, which are
then the same two-sample input the dev agent's sampler gives `mesh.traffic.figures` (zero at the
window's start, the increase at its end). So both sources share one set of formulas: rates as
count/window, percentiles by interpolating within buckets as `histogram_quantile` does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from nomadmesh.mesh import traffic

TIMEOUT_S = 8.0
PUBLIC = 'envoy_http_conn_manager_prefix="public_listener"'


@dataclass
class _Service:
    counters: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)


# (PromQL over `$W` = the window, grouping labels, how a result row adds to a service's counters)
Row = Mapping[str, str]
QUERIES: tuple[tuple[str, Callable[[Row], str | None]], ...] = (
    (f"sum by (local_cluster, envoy_response_code_class) "
     f"(increase(envoy_http_downstream_rq_xx{{{PUBLIC}}}[$W]))",
     lambda m: f"http.public_listener.downstream_rq_{m.get('envoy_response_code_class', '?')}xx"),
    (f"sum by (local_cluster) (increase(envoy_http_rbac_denied{{{PUBLIC}}}[$W]))",
     lambda m: "http.public_listener.rbac.denied"),
    ("sum by (local_cluster) (increase(envoy_connect_authz_rbac_allowed[$W]))",
     lambda m: "connect_authz.rbac.allowed"),
    ("sum by (local_cluster) (increase(envoy_connect_authz_rbac_denied[$W]))",
     lambda m: "connect_authz.rbac.denied"),
    ("sum by (local_cluster) (increase(envoy_listener_ssl_connection_error[$W]))",
     lambda m: "listener.0.0.0.0_0.ssl.connection_error"),
    ('sum by (local_cluster, consul_upstream_service) '
     '(increase(envoy_tcp_downstream_cx_total{envoy_tcp_prefix="upstream"}[$W]))',
     lambda m: (f"tcp.upstream.{m['consul_upstream_service']}.default.default.dc.downstream_cx_total"
                if m.get("consul_upstream_service") else None)),
)
LATENCY = (f"sum by (local_cluster, le) (increase(envoy_http_downstream_rq_time_bucket{{{PUBLIC}}}[$W]))")


class MetricsError(Exception):
    """Prometheus did not answer a query: the reason, for the page or the terminal."""


def query(session: requests.Session, base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base.rstrip('/')}/api/v1/query"
    try:
        resp = session.get(url, params={"query": promql}, timeout=TIMEOUT_S)
        body = resp.json()
    except (requests.RequestException, ValueError) as e:
        raise MetricsError(f"GET {url}: {type(e).__name__}: {e}") from None
    if resp.status_code != 200 or body.get("status") != "success":
        raise MetricsError(f"GET {url}: {resp.status_code} {body.get('error') or resp.text[:200]}")
    return list((body.get("data") or {}).get("result") or [])


def _value(row: Mapping[str, Any]) -> float:
    v = float(row["value"][1])
    return v if v == v else 0.0  # NaN (no samples in the window): nothing happened


def prometheus_figures(base_url: str, upstreams: Mapping[str, Iterable[str]], window_s: float = traffic.WINDOW_S,
                       session: requests.Session | None = None) -> traffic.Figures:
    """Figures over the last `window_s` from the Prometheus at `base_url`; `upstreams` are each
    service's declared destinations (from the catalog). MetricsError when Prometheus cannot answer."""
    own = session is None
    s = session or requests.Session()
    w = f"{max(1, int(window_s))}s"
    try:
        with ThreadPoolExecutor(max_workers=len(QUERIES) + 1) as pool:
            futures = [(pool.submit(query, s, base_url, q.replace("$W", w)), key_of) for q, key_of in QUERIES]
            latency = pool.submit(query, s, base_url, LATENCY.replace("$W", w))
            services: dict[str, _Service] = {}
            for fut, key_of in futures:
                for row in fut.result():
                    m = row.get("metric") or {}
                    key = key_of(m)
                    if key and m.get("local_cluster"):
                        c = services.setdefault(m["local_cluster"], _Service()).counters
                        c[key] = c.get(key, 0.0) + _value(row)
            for row in latency.result():
                m = row.get("metric") or {}
                if m.get("local_cluster") and m.get("le") not in (None, "+Inf"):
                    b = services.setdefault(m["local_cluster"], _Service()).buckets
                    b[float(m["le"])] = _value(row)
    finally:
        if own:
            s.close()
    windows = []
    for name, svc in sorted(services.items()):
        counters = dict(svc.counters)
        if any(k.startswith("http.public_listener.downstream_rq_") for k in counters):
            counters["http.public_listener.downstream_rq_total"] = sum(
                v for k, v in counters.items() if k.startswith("http.public_listener.downstream_rq_"))
        hist = {"http.public_listener.downstream_rq_time": tuple(sorted(svc.buckets.items()))} if svc.buckets else {}
        windows.append(traffic.SidecarWindow(name, tuple(upstreams.get(name, ())), traffic.Sample(0.0, {}),
                                             traffic.Sample(float(int(window_s)), counters, hist)))
    return traffic.figures(windows, f"Prometheus {base_url}")

"""`release --metrics-url`: Prometheus' answer rows become the same per-sidecar Counters as the dev
agent's Envoy text (so one pure core judges both); the queries select the sidecars by ID. Pure."""
from __future__ import annotations

import re
from typing import Any

import pytest

from nomadmesh.release.metrics import Counters, parse_envoy
from nomadmesh.release.options import ReleaseUsageError, parse_metrics_url
from nomadmesh.release.prometheus import ANSWERED, _promql, counters_from_rows


def row(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, value]}


def test_rows_become_the_counters_the_envoy_text_gives() -> None:
    envoy = parse_envoy("""\
# TYPE envoy_http_downstream_rq_xx counter
envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="public_listener"} 90
envoy_http_downstream_rq_xx{envoy_response_code_class="5",envoy_http_conn_manager_prefix="public_listener"} 10
# TYPE envoy_http_downstream_rq_time histogram
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="10"} 50
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="100"} 100
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="+Inf"} 100
""")
    answered = [row("90", consul_service_id="a-sidecar", envoy_response_code_class="2"),
                row("10", consul_service_id="a-sidecar", envoy_response_code_class="5"),
                row("7", consul_service_id="b-sidecar", envoy_response_code_class="2"),
                row("3", envoy_response_code_class="2")]  # no ID label: not a sidecar the release asked for
    latency = [row("50", consul_service_id="a-sidecar", le="10"), row("100", consul_service_id="a-sidecar", le="100"),
               row("100", consul_service_id="a-sidecar", le="+Inf")]
    got = counters_from_rows(answered, latency)
    assert got == {"a-sidecar": envoy, "b-sidecar": Counters(7, 0, ())}


def test_a_nan_sample_counts_as_nothing() -> None:
    assert counters_from_rows([row("NaN", consul_service_id="a", envoy_response_code_class="5")], []) == {
        "a": Counters(0, 0, ())}


def test_the_query_selects_exactly_the_sidecars_asked_for() -> None:
    ids = ("_nomad-task-1f2e-group-api-invoice-8080-sidecar-proxy", "invoice.2-sidecar-proxy")
    promql = _promql(ANSWERED, ids)
    assert promql.startswith("sum by (consul_service_id, envoy_response_code_class) (envoy_http_downstream_rq_xx{")
    selector = re.search(r'consul_service_id=~"(.*)"', promql)
    assert selector is not None
    regex = selector.group(1).replace("\\\\", "\\")  # the PromQL string's escapes undone
    assert all(re.fullmatch(regex, i) for i in ids)
    assert not re.fullmatch(regex, "invoiceX2-sidecar-proxy")  # the dot is literal


@pytest.mark.parametrize("text", ["prometheus:9090", "ftp://x", "http://"])
def test_a_metrics_url_that_is_not_http_is_refused(text: str) -> None:
    with pytest.raises(ReleaseUsageError, match=r"^release: --metrics-url: .* is not an http:// or https:// URL"):
        parse_metrics_url(text)
    assert parse_metrics_url("http://prom:9090/") == "http://prom:9090"

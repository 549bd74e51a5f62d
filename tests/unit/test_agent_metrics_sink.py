"""The agent's metrics sink: go-metrics' 10-second intervals and aggregates, on a fake clock."""
from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from nomadmesh.agent.consul.metrics import Gauge, MetricsSink


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_display_shows_the_last_finished_interval_with_its_aggregates() -> None:
    clock = Clock(1000.0)
    sink = MetricsSink(clock=clock)
    for value in (1.0, 2.0, 6.0):
        sink.add_sample("consul.api.http", value, {"method": "GET", "path": "v1_kv_"})
    sink.incr_counter("consul.thing", 2)
    current = sink.display([])
    assert current["Timestamp"] == "1970-01-01 00:16:40 +0000 UTC"  # the only interval so far: the current one
    clock.now = 1012.0
    sink.add_sample("consul.api.http", 100.0, {"method": "GET", "path": "v1_kv_"})  # the next interval
    body = sink.display([Gauge("consul.state.nodes", 1)])
    assert body["Timestamp"] == "1970-01-01 00:16:40 +0000 UTC"
    [sample] = body["Samples"]
    assert sample["Labels"] == {"method": "GET", "path": "v1_kv_"}
    assert (sample["Count"], sample["Sum"], sample["Min"], sample["Max"], sample["Mean"]) == (3, 9.0, 1.0, 6.0, 3.0)
    assert math.isclose(sample["Stddev"], math.sqrt(7.0))  # sample variance of 1, 2, 6
    assert sample["Rate"] == 0.9
    assert [(c["Name"], c["Count"], c["Sum"]) for c in body["Counters"]] == [("consul.thing", 1, 2.0)]
    assert body["Gauges"] == [{"Name": "consul.state.nodes", "Value": 1, "Labels": {}}]
    assert body["Points"] == []


def test_prometheus_is_cumulative_and_flattens_names() -> None:
    clock = Clock(1000.0)
    sink = MetricsSink(clock=clock)
    sink.add_sample("consul.api.http", 2.0, {"method": "PUT", "path": "v1_agent_reload"})
    clock.now = 1100.0
    sink.add_sample("consul.api.http", 3.0, {"method": "PUT", "path": "v1_agent_reload"})
    text = sink.prometheus([Gauge("consul.state.config_entries", 4, (("kind", "service-defaults"),))]).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    http = {s.name: s.value for s in families["consul_api_http"].samples}
    assert http == {"consul_api_http_count": 2.0, "consul_api_http_sum": 5.0}
    [entries] = families["consul_state_config_entries"].samples
    assert (entries.labels, entries.value) == ({"kind": "service-defaults"}, 4.0)

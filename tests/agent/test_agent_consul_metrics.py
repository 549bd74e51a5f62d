"""Consul's GET /v1/agent/metrics on the dev agent, over real HTTP with py-consul: the JSON shape
(Timestamp, Gauges, Points, Counters, Samples) with the state's gauges and the requests' timings,
and the Prometheus text exposition of the same figures."""
from __future__ import annotations

from typing import Any

import consul
import dns.message
import dns.query
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.agents import RunningAgent
from support.waiting import wait_until


def _gauge(body: dict[str, Any], name: str) -> float:
    [value] = [g["Value"] for g in body["Gauges"] if g["Name"] == name]
    return float(value)


def test_json_metrics_count_the_state_and_time_the_requests(module_agent: RunningAgent) -> None:
    c = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    body = c.agent.metrics()
    assert set(body) == {"Timestamp", "Gauges", "Points", "Counters", "Samples"}
    assert body["Timestamp"].endswith(" +0000 UTC")
    instances = _gauge(body, "consul.state.service_instances")
    c.agent.service.register("metrics-web", service_id="metrics-web-1", port=8080)
    c.agent.service.register("metrics-web", service_id="metrics-web-2", port=8081)
    c.kv.put("metrics/one", "1")
    body = c.agent.metrics()
    assert _gauge(body, "consul.state.service_instances") == instances + 2
    assert _gauge(body, "consul.state.kv_entries") >= 1
    assert _gauge(body, "consul.state.nodes") == 1

    # Timings show once their 10 s interval is over (Consul shows the last finished interval).
    def services_timing() -> list[dict[str, Any]]:
        requests.get(f"{module_agent.consul_addr}/v1/agent/services", timeout=10)
        return [s for s in c.agent.metrics()["Samples"]
                if s["Name"] == "consul.api.http" and s["Labels"] == {"method": "GET", "path": "v1_agent_services"}]
    [sample] = wait_until(services_timing, timeout=30, what="a finished interval timing GET /v1/agent/services")
    assert sample["Count"] >= 1 and sample["Min"] <= sample["Mean"] <= sample["Max"]
    assert sample["Sum"] > 0 and sample["Rate"] == sample["Sum"] / 10
    assert {"Stddev", "Rate"} <= set(sample)


def test_prometheus_metrics_are_the_text_exposition(module_agent: RunningAgent) -> None:
    c = consul.Consul(host="127.0.0.1", port=module_agent.consul_port)
    c.agent.service.register("prom-web", service_id="prom-web-1", port=8080)
    requests.get(f"{module_agent.consul_addr}/v1/kv/prom/some/key", timeout=10)
    r = requests.get(f"{module_agent.consul_addr}/v1/agent/metrics", params={"format": "prometheus"}, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["consul_state_service_instances"].type == "gauge"
    assert families["consul_state_service_instances"].samples[0].value >= 1
    http = families["consul_api_http"]
    assert http.type == "summary"
    kv_count = [s.value for s in http.samples
                if s.name == "consul_api_http_count" and s.labels == {"method": "GET", "path": "v1_kv_"}]
    assert kv_count and kv_count[0] >= 1
    assert c.agent.metrics(format_prometheus=True).startswith("# HELP")


def test_dns_queries_are_timed(module_agent: RunningAgent) -> None:
    query = dns.message.make_query("consul.service.consul", "A")
    dns.query.udp(query, "127.0.0.1", port=module_agent.dns_port, timeout=5)
    text = requests.get(f"{module_agent.consul_addr}/v1/agent/metrics?format=prometheus", timeout=10).text
    counts = [s.value for f in text_string_to_metric_families(text) if f.name == "consul_dns_domain_query"
              for s in f.samples if s.name.endswith("_count")]
    assert counts and counts[0] >= 1

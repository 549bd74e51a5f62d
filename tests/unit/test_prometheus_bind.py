"""Consul's `envoy_prometheus_bind_addr` proxy config (issue 16): declared in a definition, rendered into
the job's sidecar proxy config, and turned by the Envoy bootstrap into a /metrics listener; the stats
carry Consul's `local_cluster` tag and the upstream's name as a label of its own."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from nomadmesh.connect.envoy import PROMETHEUS_LISTENER, SELF_ADMIN_CLUSTER, bootstrap
from nomadmesh.definitions import load_spec
from nomadmesh.deploy.jobs import render_jobs
from nomadmesh.errors import AgentError
from nomadmesh.jobspec.parse import parse_hcl
from support.spec_builders import definition, problems, write_services


def with_config(config: dict[str, str]) -> dict[str, object]:
    doc = definition("api", 5000, {"db": 6000})
    doc["service"]["connect"]["sidecar_service"]["proxy"]["config"] = config  # type: ignore[index]
    return doc


def test_the_bind_address_is_rendered_into_the_sidecar_proxy_config(tmp_path: Path) -> None:
    services = write_services(tmp_path, {"api": with_config({"envoy_prometheus_bind_addr": "0.0.0.0:9102"}),
                                         "db": definition("db", 5001)})
    spec = load_spec(services)
    assert spec.service("api").prometheus_bind_addr == "0.0.0.0:9102"
    rendered = render_jobs(spec)
    job = parse_hcl(rendered.sources["api"].hcl, rendered.sources["api"].var_file())
    proxy = job["TaskGroups"][0]["Services"][0]["Connect"]["SidecarService"]["Proxy"]
    assert proxy["Config"] == {"envoy_prometheus_bind_addr": "0.0.0.0:9102"}
    assert "envoy_prometheus_bind_addr" not in rendered.sources["db"].hcl


@pytest.mark.parametrize("bind", ["9102", "0.0.0.0:x", ":9102", "0.0.0.0:70000"])
def test_a_bad_bind_address_names_file_and_field(tmp_path: Path, bind: str) -> None:
    found = problems(tmp_path, {"api": with_config({"envoy_prometheus_bind_addr": bind}),
                                "db": definition("db", 5001)})
    assert found == [("api", "service.connect.sidecar_service.proxy.config.envoy_prometheus_bind_addr",
                      f"{bind!r}: want host:port, e.g. \"0.0.0.0:9102\"")]


def test_bootstrap_serves_admin_prometheus_stats_at_metrics_only() -> None:
    boot = bootstrap("api-sidecar-proxy", "api", "/s.sock", "127.0.0.2", 19001, "0.0.0.0:9102")
    (listener,) = boot["static_resources"]["listeners"]
    assert listener["name"] == PROMETHEUS_LISTENER
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 9102}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    metrics, rest = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert metrics == {"match": {"path": "/metrics"},
                       "route": {"cluster": SELF_ADMIN_CLUSTER, "prefix_rewrite": "/stats/prometheus"}}
    assert rest["direct_response"] == {"status": 404}  # nothing else of the admin API
    admin = next(c for c in boot["static_resources"]["clusters"] if c["name"] == SELF_ADMIN_CLUSTER)
    assert admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.2", "port_value": 19001}}
    assert "listeners" not in bootstrap("n", "api", "/s.sock")["static_resources"]
    with pytest.raises(AgentError, match="envoy_prometheus_bind_addr 'nope'"):
        bootstrap("n", "api", "/s.sock", prometheus_bind_addr="nope")


def test_stats_tags_name_the_local_service_and_the_upstream() -> None:
    tags = {t["tag_name"]: t for t in bootstrap("n", "api", "/s.sock")["stats_config"]["stats_tags"]}
    assert tags["local_cluster"]["fixed_value"] == "api"
    # Envoy's RE2 and Python's re agree on this pattern: group 1 leaves the name, group 2 is the value.
    m = re.match(tags["consul.upstream.service"]["regex"], "tcp.upstream.db.default.default.dc1.downstream_cx_total")
    assert m is not None and m.group(2) == "db" and m.group(1) == "db.default.default.dc1."

"""Envoy bootstrap and command line (pure), the binary lookup, and Envoy accepting the bootstrap."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nomadmesh.connect.envoy import bootstrap, envoy_argv, find_envoy
from nomadmesh.errors import AgentError


def _ads_endpoint(boot: dict) -> dict:
    (cluster,) = boot["static_resources"]["clusters"]
    return cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]


def test_bootstrap_points_at_ads_over_http2_with_fast_backoff() -> None:
    boot = bootstrap("web-sidecar-proxy", "web", "127.0.0.1:8502", "127.0.0.1", 19000)
    assert boot["node"] == {"id": "web-sidecar-proxy", "cluster": "web"}
    assert _ads_endpoint(boot) == {"socket_address": {"address": "127.0.0.1", "port_value": 8502}}
    (cluster,) = boot["static_resources"]["clusters"]
    opts = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in opts["explicit_http_config"]
    ads = boot["dynamic_resources"]["ads_config"]
    assert (ads["api_type"], ads["transport_api_version"]) == ("GRPC", "V3")
    grpc = ads["grpc_services"][0]["envoy_grpc"]
    assert grpc["cluster_name"] == cluster["name"]
    assert grpc["retry_policy"]["retry_back_off"] == {"base_interval": "0.1s", "max_interval": "1s"}
    for key in ("lds_config", "cds_config"):
        assert boot["dynamic_resources"][key] == {"ads": {}, "resource_api_version": "V3"}
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19000}


@pytest.mark.parametrize("address", ["/alloc/tmp/consul_grpc.sock", "unix:///alloc/tmp/consul_grpc.sock"])
def test_bootstrap_reaches_a_unix_socket_as_a_pipe(address: str) -> None:
    assert _ads_endpoint(bootstrap("n", "c", address)) == {"pipe": {"path": "/alloc/tmp/consul_grpc.sock"}}


def test_bootstrap_refuses_an_address_without_a_port() -> None:
    with pytest.raises(AgentError, match="want host:port"):
        bootstrap("n", "c", "localhost")


def test_argv_disables_hot_restart_and_drains_immediately() -> None:
    argv = envoy_argv("/b.json", envoy="/bin/envoy")
    assert argv[:3] == ["/bin/envoy", "-c", "/b.json"]
    joined = " ".join(argv)
    for flag in ("--concurrency 1", "--disable-hot-restart", "--drain-time-s 0", "--drain-strategy immediate"):
        assert flag in joined


def test_find_envoy_prefers_the_wheel_next_to_python() -> None:
    assert find_envoy() == str(Path(sys.executable).parent / "envoy")

"""Consul service definitions → AgentService/HealthCheck documents (pure): spellings, types,
check IDs and Consul's sidecar defaults."""
from __future__ import annotations

import pytest

from nomadmesh.agent.consul.service_defs import (
    SIDECAR_PORT_MAX,
    SIDECAR_PORT_MIN,
    ServiceDefError,
    expand,
    normalize_service,
)


def test_any_spelling_maps_to_go_field_names() -> None:
    svc = normalize_service({"name": "a", "PORT": 1, "enable_tag_override": True, "Unknown": 5,
                             "meta": {"k": "v"}, "connect": {"sidecar_service": {"proxy": {
                                 "local_service_port": 9, "config": {"keep_me": 1}}}}})
    assert svc == {"Name": "a", "Port": 1, "EnableTagOverride": True, "Meta": {"k": "v"},
                   "Connect": {"SidecarService": {"Proxy": {"LocalServicePort": 9, "Config": {"keep_me": 1}}}}}


@pytest.mark.parametrize("raw, message", [
    ({"Name": "a", "Port": 1.5}, "Port: must be an integer"),
    ({"Name": "a", "Meta": {"k": 1}}, "Meta: must be an object of strings"),
    ({"Name": "a", "Checks": [{"TCP": "x:1", "Interval": "soon"}]}, "Checks[0].Interval: invalid duration"),
    ({"Name": "a", "Connect": {"Native": "yes"}}, "Connect.Native: must be a boolean"),
    ({"Port": 1}, "Name: missing service name"),
])
def test_wrong_types_name_the_field(raw: dict, message: str) -> None:
    with pytest.raises(ServiceDefError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalize_service(raw)


def test_check_ids_follow_consul() -> None:
    one = expand(normalize_service({"Name": "a", "Check": {"TCP": "127.0.0.1:1", "Interval": "1s"}}), "dc1", "n", set())
    assert [c["CheckID"] for c in one.checks] == ["service:a"]
    two = expand(normalize_service({"Name": "a", "ID": "a1", "Checks": [
        {"TCP": "127.0.0.1:1", "Interval": "1s"}, {"HTTP": "http://x/", "Interval": "2s", "CheckID": "mine"}]}),
        "dc1", "n", set())
    assert [(c["CheckID"], c["Type"], c["Status"]) for c in two.checks] == [
        ("service:a1:1", "tcp", "critical"), ("mine", "http", "critical")]
    assert two.checks[0]["Name"] == "Service 'a' check"


def test_sidecar_takes_the_lowest_free_port_and_fails_when_none_is_left() -> None:
    svc = normalize_service({"Name": "web", "Port": 80, "Connect": {"SidecarService": {}}})
    exp = expand(svc, "dc1", "n", {SIDECAR_PORT_MIN, SIDECAR_PORT_MIN + 1})
    assert exp.services[1]["Port"] == SIDECAR_PORT_MIN + 2
    with pytest.raises(ServiceDefError, match="no port free"):
        expand(svc, "dc1", "n", set(range(SIDECAR_PORT_MIN, SIDECAR_PORT_MAX + 1)))


def test_sidecar_keeps_what_the_user_set() -> None:
    svc = normalize_service({"Name": "web", "Port": 80, "Connect": {"SidecarService": {
        "Port": 20000, "Checks": [{"Name": "mine", "TCP": "127.0.0.1:20000", "Interval": "5s"}],
        "Proxy": {"LocalServiceAddress": "127.0.0.9"}}}})
    exp = expand(svc, "dc1", "n", set())
    side = exp.services[1]
    assert side["Port"] == 20000 and side["Proxy"]["LocalServiceAddress"] == "127.0.0.9"
    assert [c["Name"] for c in exp.checks] == ["mine"]

"""Named ports (`nomad.ports`) and checks on a named port: exact errors, and the rendered HCL
parsed back with nomadmesh.jobspec states the ports and the check's port label (issue 12 item 4)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomadmesh.definitions import load_spec
from nomadmesh.jobspec import canonicalize, parse_hcl, validate
from nomadmesh.render import render_hcl
from support.spec_builders import definition, edit, problems, write_services

A = definition("a", 8080)
PORTS = edit(A, "nomad.ports", {"http": 8080, "metrics": 9102})
METRICS_CHECK = {"type": "http", "path": "/metrics", "port": "metrics"}


def one(tmp_path: Path, doc: Any) -> list[tuple[str, str]]:
    return [(field, msg) for _, field, msg in problems(tmp_path, {"a": doc})]


@pytest.mark.parametrize(("doc", "expected"), [
    (edit(A, "nomad.ports", [8080]), [("nomad.ports", "must be an object of port label -> port, got array")]),
    (edit(A, "nomad.ports", {"met-rics": 9102}),
     [("nomad.ports.met-rics", "a port label is letters, digits and '_', starting with a letter or '_'")]),
    (edit(A, "nomad.ports", {"metrics": "9102"}),
     [("nomad.ports.metrics", "must be a port number between 1 and 65535, got string '9102'")]),
    (edit(A, "nomad.ports", {"metrics": 0}),
     [("nomad.ports.metrics", "must be a port number between 1 and 65535, got number 0")]),
    (edit(A, "nomad.ports", {"a": 9102, "b": 9102}), [("nomad.ports.b", "port 9102 is already labelled 'a'")]),
    (edit(edit(A, "service.connect", "_delete"), "nomad.ports", {"http": 9102}),
     [("nomad.ports.http", "label 'http' is the service port's (8080); give port 9102 another label")]),
    (edit(PORTS, "nomad.checks", [{**METRICS_CHECK, "port": "admin"}]),
     [("nomad.checks[0].port", "names no port: the labels in nomad.ports are http, metrics")]),
    (edit(A, "nomad.checks", [{**METRICS_CHECK}]), [("nomad.checks[0].port", "names no port: nomad.ports names none")]),
], ids=["not object", "bad label", "port string", "port zero", "same port twice", "http label elsewhere",
        "unknown check label", "no ports"])
def test_bad_ports_are_refused_with_the_field(tmp_path: Path, doc: Any, expected: list[tuple[str, str]]) -> None:
    assert one(tmp_path, doc) == expected


def _group(tmp_path: Path, doc: Any) -> dict[str, Any]:
    spec = load_spec(write_services(tmp_path, {"a": doc}))
    job = canonicalize(parse_hcl(render_hcl(spec.service("a"), spec.project)))
    assert validate(job) == []
    (group,) = job["TaskGroups"]
    return group


def _ports(group: dict[str, Any]) -> dict[str, int]:
    return {p["Label"]: p["To"] for p in group["Networks"][0]["DynamicPorts"]}


def test_connect_service_with_named_ports_and_a_check_on_one(tmp_path: Path) -> None:
    group = _group(tmp_path, edit(PORTS, "nomad.checks", [METRICS_CHECK]))
    assert _ports(group) == {"http": 8080, "metrics": 9102}
    (service,) = group["Services"]
    assert service["PortLabel"] == "8080"  # a Connect service registers its own port number
    (check,) = service["Checks"]
    assert (check["PortLabel"], check["Path"], check["Expose"]) == ("metrics", "/metrics", True)


def test_plain_service_registers_the_label_of_its_own_port(tmp_path: Path) -> None:
    doc = edit(edit(A, "service.connect", "_delete"), "nomad.ports", {"web": 8080, "metrics": 9102})
    group = _group(tmp_path, edit(doc, "nomad.checks", [{"type": "tcp", "port": "metrics"}]))
    assert _ports(group) == {"web": 8080, "metrics": 9102}
    (service,) = group["Services"]
    assert service["PortLabel"] == "web"
    assert service["Checks"][0]["PortLabel"] == "metrics"


def test_docker_task_maps_every_named_port(tmp_path: Path) -> None:
    doc = edit(edit(A, "nomad", {"driver": "docker", "image": "redis:7"}), "nomad.ports", {"metrics": 9102})
    group = _group(tmp_path, doc)
    assert group["Tasks"][0]["Config"]["ports"] == ["metrics"]
    assert _ports(group) == {"metrics": 9102}


def test_agent_exposes_a_named_port_check_on_that_port_not_the_service_port(tmp_path: Path) -> None:
    from nomadmesh.agent.nomad import connect_hook
    from nomadmesh.agent.nomad.services import registrations

    spec = load_spec(write_services(tmp_path, {"a": edit(PORTS, "nomad.checks", [METRICS_CHECK])}))
    job = canonicalize(parse_hcl(render_hcl(spec.service("a"), spec.project)))
    (group,) = job["TaskGroups"]
    expose = connect_hook.extra_ports(job, group)[1]["Label"]
    ports = {"connect-proxy-a": (25000, -1), expose: (26000, -1), "http": (27000, 8080), "metrics": (27001, 9102)}
    alloc = {"ID": "a1b2c3d4-0000-0000-0000-000000000000", "Job": job, "TaskGroup": group["Name"],
             "NetworkStatus": {"Address": "10.9.0.5"},
             "AllocatedResources": {"Shared": {"Ports": [
                 {"Label": k, "Value": v, "To": to} for k, (v, to) in ports.items()]}}}
    (reg,) = registrations(alloc)
    proxy = reg["Connect"]["SidecarService"]["Proxy"]
    assert proxy["LocalServicePort"] == 8080
    assert proxy["Expose"]["Paths"] == [{"Path": "/metrics", "Protocol": "http", "LocalPathPort": 9102,
                                         "ListenerPort": 26000}]


WORKER = edit(definition("worker", 1, {"b": 6001}), "service.port", "_delete")
B = definition("b", 5001)


def test_a_connect_worker_without_a_port_renders_a_service_with_its_sidecar_and_upstreams(tmp_path: Path) -> None:
    spec = load_spec(write_services(tmp_path, {"worker": WORKER, "b": B}))
    hcl = render_hcl(spec.service("worker"), spec.project)
    group = canonicalize(parse_hcl(hcl))["TaskGroups"][0]
    (service,) = group["Services"]
    assert service["Name"] == "worker" and service["PortLabel"] == ""
    upstreams = service["Connect"]["SidecarService"]["Proxy"]["Upstreams"]
    assert [(u["DestinationName"], u["LocalBindPort"]) for u in upstreams] == [("b", 6001)]
    assert "PORT" not in group["Tasks"][0]["Env"]


@pytest.mark.parametrize(("doc", "expected"), [
    (edit(WORKER, "nomad.checks", [{"type": "http", "path": "/health"}]),
     [("nomad.checks[0]", "checks the service port, but this Connect service has none (a worker); "
                          "give the check a port from nomad.ports")]),
    (edit(WORKER, "nomad.publish", 0),
     [("nomad.publish", "publishes the service port, but this Connect service has none (a worker)")]),
], ids=["check", "publish"])
def test_a_worker_refuses_what_needs_its_port(tmp_path: Path, doc: Any, expected: list[tuple[str, str]]) -> None:
    assert [(f, m) for _, f, m in problems(tmp_path, {"worker": doc, "b": B})] == expected


def test_a_worker_may_check_a_named_port(tmp_path: Path) -> None:
    doc = edit(edit(WORKER, "nomad.ports", {"metrics": 9102}), "nomad.checks", [METRICS_CHECK])
    spec = load_spec(write_services(tmp_path, {"worker": doc, "b": B}))
    group = canonicalize(parse_hcl(render_hcl(spec.service("worker"), spec.project)))["TaskGroups"][0]
    assert group["Services"][0]["Checks"][0]["PortLabel"] == "metrics"

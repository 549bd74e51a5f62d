"""An ingress gateway declared in the project: a definition of kind ingress-gateway. Its rules (with
the exact `file: field: message` a user sees), its rendering to Nomad's gateway block (which the
agent accepts and injects like Nomad), and what `nomadmesh up` prints to call through it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nomadmesh.agent.nomad import spec as agent_spec
from nomadmesh.cli.up import _entry
from nomadmesh.definitions import load_spec
from nomadmesh.definitions.model import IngressListener, IngressService
from nomadmesh.deploy.jobs import render_jobs
from nomadmesh.deploy.status import AllocStatus, JobStatus
from nomadmesh.mesh.graph import Edge, build_graph
from nomadmesh.render.renderer import render_hcl
from support.spec_builders import definition, edit, problems, write_services

GW: dict[str, Any] = {
    "service": {"name": "edge", "kind": "ingress-gateway", "port": 8080},
    "ingress": {"listeners": [{"port": 8080, "protocol": "tcp", "services": [{"name": "web"}]}]},
    "nomad": {"publish": 0},
}
WEB = definition("web", 5000)
API = definition("api", 5001)


def gateway_problems(tmp_path: Path, doc: Any, **others: Any) -> list[tuple[str, str]]:
    return [(field, msg) for folder, field, msg in problems(tmp_path, {"edge": doc, "web": WEB, "api": API, **others})
            if folder == "edge"]


CASES: list[tuple[str, Any, list[tuple[str, str]]]] = [
    ("other kind", edit(GW, "service.kind", "terminating-gateway"),
     [("service.kind", "must be one of ingress-gateway, got 'terminating-gateway'"),
      ("service.kind", "must be 'ingress-gateway' for a service with an 'ingress' section")]),
    ("ingress without kind", edit(GW, "service.kind", "_delete"),
     [("service.kind", "must be 'ingress-gateway' for a service with an 'ingress' section")]),
    ("kind without ingress", edit(GW, "ingress", "_delete"),
     [("ingress", "is required for an ingress gateway: its listeners (Consul's ingress-gateway entry)")]),
    ("sidecar on a gateway", edit(GW, "service.connect", {"sidecar_service": {}}),
     [("service.connect", "is not used by an ingress gateway: it is itself an Envoy of the mesh")]),
    ("no listeners", edit(GW, "ingress.listeners", []), [("ingress.listeners", "is required: at least one listener")]),
    ("listener without services", edit(GW, "ingress.listeners.0.services", []),
     [("ingress.listeners[0].services", "must list at least one service")]),
    ("bad protocol", edit(GW, "ingress.listeners.0.protocol", "grpc"),
     [("ingress.listeners[0].protocol", "must be one of tcp, http, got 'grpc'")]),
    ("two services on tcp", edit(GW, "ingress.listeners.0.services", [{"name": "web"}, {"name": "api"}]),
     [("ingress.listeners[0].services",
       "a tcp listener takes exactly one service (Consul routes by Host only on http)")]),
    ("hosts on tcp", edit(GW, "ingress.listeners.0.services.0.hosts", ["web.example"]),
     [("ingress.listeners[0].services[0].hosts",
       "are only for http listeners (a tcp listener has no Host to route by)")]),
    ("port not a listener", edit(GW, "service.port", 9090),
     [("service.port", "must be one of the ingress listener ports (8080): it is the listener nomad.publish maps "
                       "to the host")]),
    ("duplicate listener port", edit(GW, "ingress.listeners", [
        {"port": 8080, "services": [{"name": "web"}]}, {"port": 8080, "services": [{"name": "web"}]}]),
     [("ingress.listeners[1].port", "8080 is already the port of ingress.listeners[0]")]),
    ("a command for the gateway", edit(GW, "nomad.command", "envoy"),
     [("nomad.command", "is not used by an ingress gateway: Nomad runs its Envoy task")]),
    ("unknown listener key", edit(GW, "ingress.listeners.0.tls", {"enabled": True}),
     [("ingress.listeners[0].tls", "unknown key; expected one of port, protocol, services")]),
    ("undefined service", edit(GW, "ingress.listeners.0.services.0.name", "nope"), None),
]


@pytest.mark.parametrize("doc, expected", [(d, e) for _, d, e in CASES], ids=[c for c, _, _ in CASES])
def test_gateway_rules(tmp_path: Path, doc: Any, expected: list[tuple[str, str]] | None) -> None:
    got = gateway_problems(tmp_path, doc)
    if expected is None:  # the cross-file rule: named like any undefined upstream
        ((field, message),) = got
        assert field == "ingress.listeners[0].services[0].name" and message.startswith("'nope' is not a service")
    else:
        assert got == expected


def test_a_gateway_reaches_only_services_with_a_sidecar(tmp_path: Path) -> None:
    plain = {"service": {"name": "web", "port": 5000}, "nomad": {"driver": "raw_exec", "command": "python3"}}
    got = [(f, m) for folder, f, m in problems(tmp_path, {"edge": GW, "web": plain}) if folder == "edge"]
    assert got == [("ingress.listeners[0].services[0].name",
                    "'web' has no Connect sidecar (service.connect): a gateway reaches services only through the mesh")]


def loaded(tmp_path: Path, gw: dict[str, Any] = GW) -> Any:
    return load_spec(write_services(tmp_path, {"edge": gw, "web": WEB, "api": API}))


def test_model_graph_and_deploy_order(tmp_path: Path) -> None:
    gw = edit(GW, "ingress.listeners", [
        {"port": 8080, "services": [{"name": "web"}]},
        {"port": 8081, "protocol": "http", "services": [{"name": "web", "hosts": ["w.example"]}, {"name": "api"}]}])
    spec = loaded(tmp_path, gw)
    edge = spec.service("edge")
    assert edge.is_gateway and not edge.connect
    assert edge.ingress == (IngressListener(8080, "tcp", (IngressService("web"),)),
                            IngressListener(8081, "http",
                                            (IngressService("web", ("w.example",)), IngressService("api"))))
    assert {e for e in build_graph(spec).edges if e.source == "edge"} == {
        Edge("edge", "web", 8080), Edge("edge", "web", 8081), Edge("edge", "api", 8081)}
    assert render_jobs(spec).order[-1] == "edge"  # after what it fronts


def test_renders_nomads_gateway_block_the_agent_accepts(tmp_path: Path) -> None:
    gw = edit(GW, "ingress.listeners", [
        {"port": 8080, "services": [{"name": "web"}]},
        {"port": 8081, "protocol": "http", "services": [{"name": "api", "hosts": ["api.example"]}]}])
    gw = edit(gw, "nomad.publish", 18080)
    spec = loaded(tmp_path, gw)
    edge = spec.service("edge")
    hcl = render_hcl(edge, spec.project)
    assert 'task "' not in hcl  # Nomad injects the gateway's Envoy task
    job = agent_spec.prepare(agent_spec.parse_hcl(hcl))
    (tg,) = job["TaskGroups"]
    ports = {p["Label"]: (p["Value"], p["To"]) for n in tg["Networks"]
             for p in (n.get("ReservedPorts") or []) + (n.get("DynamicPorts") or [])}
    assert ports == {"listener_8080": (18080, 8080), "listener_8081": (0, 8081)}
    assert [t["Name"] for t in tg["Tasks"]] == ["connect-ingress-edge"]
    (svc,) = tg["Services"]
    assert svc["PortLabel"] == "listener_8080"
    listeners = svc["Connect"]["Gateway"]["Ingress"]["Listeners"]
    assert [(lst["Port"], lst["Protocol"], [(s["Name"], s["Hosts"]) for s in lst["Services"]]) for lst in listeners] \
        == [(8080, "tcp", [("web", None)]), (8081, "http", [("api", ["api.example"])])]


def status(job: str, *addresses: str) -> JobStatus:
    return JobStatus(job, "running", 0, "successful",
                     (AllocStatus("a", "running", True, {}, None, tuple(addresses)),))


def test_up_prints_the_gateways_address(tmp_path: Path) -> None:
    rendered = render_jobs(loaded(tmp_path))
    parsed = {n: agent_spec.parse_hcl(src.hcl) for n, src in rendered.sources.items()}
    jobs = [status("web"), status("api"), status("edge", "127.0.0.1:23456")]
    assert _entry(jobs, rendered.order, parsed) == ("web through the edge gateway", "127.0.0.1:23456")
    # Without a gateway, the published address of a service, as before.
    assert _entry([status("web", "127.0.0.1:5000")], ("web",), {"web": {}}) == ("web", "127.0.0.1:5000")

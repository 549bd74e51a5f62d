"""The live console's pure view (nomadmesh.ui.console, issue 16): each service's health and versions,
each edge with its figures, what is broken, the edge label and the name/tag filter."""
from __future__ import annotations

from test_ui_model import ALLOC, entry, row

from nomadmesh.mesh import traffic
from nomadmesh.ui import console, model

DB_ALLOC = "1c2d3e4f-1111-2222-3333-444455556666"


def mesh(entries: list[dict] = ()) -> model.Mesh:
    web_id = f"_nomad-task-{ALLOC}-group-web-web-http"
    db_id = f"_nomad-task-{DB_ALLOC}-group-db-db-tcp"
    health = {
        "web": [row("web", web_id, [("http", "passing", "")], tags=["front"])],
        "web-sidecar-proxy": [row("web-sidecar-proxy", web_id + "-sidecar-proxy", kind="connect-proxy",
                                  proxy={"DestinationServiceID": web_id, "Upstreams": [
                                      {"DestinationName": "api", "LocalBindPort": 7001},
                                      {"DestinationName": "ghost", "LocalBindPort": 7002}]})],
        "api": [row("api", "api-1", [("tcp", "passing", "")]), row("api", "api-2", [("tcp", "critical", "")])],
        "api-sidecar-proxy": [row("api-sidecar-proxy", "api-1-sidecar-proxy", kind="connect-proxy",
                                  proxy={"DestinationServiceID": "api-1", "Upstreams": [
                                      {"DestinationName": "db", "LocalBindPort": 7003}]})],
        "db": [row("db", db_id, [("tcp", "critical", "")])],
    }
    allocs = [{"ID": ALLOC, "JobID": "web", "TaskGroup": "web", "ClientStatus": "running", "JobVersion": 3},
              {"ID": DB_ALLOC, "JobID": "db", "TaskGroup": "db", "ClientStatus": "running", "JobVersion": 1}]
    return model.build_mesh(health, allocs, entries, True)


def figures() -> traffic.Figures:
    edge = traffic.EdgeFigures("web", "api", 60.0, 2.5, "requests", 0.8, 0.15, 0.05, 0.2, 0.1, 0.0, 3.0, 42.0,
                               "destination")
    idle = traffic.EdgeFigures("api", "db", 60.0, 0.0, "connections")
    return traffic.Figures("test", 60.0, (edge, idle), ())


def test_services_have_health_all_some_or_none_passing_and_their_job_versions() -> None:
    snap = console.snapshot(mesh(), None, "no figures: here is why")
    by = {s.name: s for s in snap.services}
    assert (by["web"].health, by["web"].passing, by["web"].instances) == (console.ALL_PASSING, 1, 1)
    assert (by["api"].health, by["api"].passing, by["api"].instances) == (console.SOME_FAILING, 1, 2)
    assert by["db"].health == console.NONE_PASSING
    assert by["web"].versions == {"3": 1} and by["api"].versions == {"?": 2}  # api is not run by Nomad
    assert not snap.has_figures and snap.figures_from == "no figures: here is why"
    assert all(e.figures is None and e.label == ("", "") for e in snap.edges)


def test_an_upstream_with_no_registered_or_no_healthy_instance_is_broken() -> None:
    edges = {(e.source, e.destination): e for e in console.snapshot(mesh(), None).edges}
    assert edges[("web", "ghost")].destination_health == console.NOT_REGISTERED and edges[("web", "ghost")].broken
    assert edges[("api", "db")].broken and edges[("api", "db")].state == "broken"  # db: none passing
    assert not edges[("web", "api")].broken and edges[("web", "api")].state == model.ALLOWED  # one of two passes


def test_an_l7_intention_makes_the_edge_per_request_not_denied() -> None:
    l7 = {"Kind": "service-intentions", "Name": "api", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/public"}}]}]}
    (edge,) = [e for e in console.snapshot(mesh([l7]), None).edges if e.destination == "api"]
    assert edge.edge.verdict == model.PER_REQUEST and edge.state == "per-request"
    denied = [e for e in console.snapshot(mesh([entry("api", ("web", "deny"))]), None).edges if e.destination == "api"]
    assert denied[0].state == model.DENIED


def test_edges_carry_their_figures_label_errors_and_idleness() -> None:
    snap = console.snapshot(mesh(), figures())
    edges = {(e.source, e.destination): e for e in snap.edges}
    busy, idle = edges[("web", "api")], edges[("api", "db")]
    assert busy.label == ("2.5 rps", "20% err · p99 42 ms") and busy.erroring and not busy.idle
    assert idle.label == ("0 cx/s", "") and idle.idle and not idle.erroring
    assert snap.flowing and snap.has_figures and snap.window_s == 60.0
    row_ = next(r for r in snap.to_json()["edges"] if r["destination"] == "api")
    assert {"source", "destination", "rps", "error_share", "p99_ms", "verdict", "broken"} <= set(row_)
    assert row_["decided_by"] == "default policy" and row_["measured_at"] == "destination"


def test_filter_keeps_matching_services_their_edges_and_neighbours() -> None:
    snap = console.snapshot(mesh(), None)
    front = console.filtered(snap, "FRONT")  # web's tag, case-insensitive
    assert {s.name for s in front.services} == {"web", "api"}  # ghost is not registered: no service view
    assert {(e.source, e.destination) for e in front.edges} == {("web", "api"), ("web", "ghost")}
    assert console.filtered(snap, "") is snap
    assert console.filtered(snap, "nothing-matches").edges == ()


def test_tls_failures_are_the_edges_only_when_it_is_the_destinations_only_caller() -> None:
    def service(name: str, tls: float) -> traffic.ServiceFigures:
        return traffic.ServiceFigures(name, 60.0, 1, "tcp", 1.0, None, None, None, 0.0, 0.0, tls, None, None)

    only = traffic.EdgeFigures("web", "api", 60.0, 1.0, "requests")  # web is api's only measured caller
    shared = traffic.EdgeFigures("api", "db", 60.0, 1.0, "connections")
    other = traffic.EdgeFigures("cache", "db", 60.0, 1.0, "connections")  # db has a second caller
    snap = console.snapshot(mesh(), traffic.Figures("test", 60.0, (only, shared, other),
                                                    (service("api", 0.5), service("db", 0.25))))
    edges = {(e.source, e.destination): e for e in snap.edges}
    assert edges[("web", "api")].tls_failures == (0.5, "edge") and edges[("web", "api")].erroring
    assert edges[("api", "db")].tls_failures == (0.25, "service") and not edges[("api", "db")].erroring
    assert edges[("web", "ghost")].tls_failures == (None, "")  # nothing registered, no figures
    row_ = next(r for r in snap.to_json()["edges"] if r["destination"] == "db")
    assert (row_["tls_failures_per_s"], row_["tls_failures_of"]) == (0.25, "service")


def test_tls_failures_met_by_the_caller_are_the_edges_own() -> None:
    seen = traffic.EdgeFigures("api", "db", 60.0, 1.0, "connections", tls_failures_per_s=0.5)
    snap = console.snapshot(mesh(), traffic.Figures("test", 60.0, (seen,), ()))
    edge = next(e for e in snap.edges if (e.source, e.destination) == ("api", "db"))
    assert edge.tls_failures == (0.5, "caller") and edge.erroring

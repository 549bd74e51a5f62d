"""The UI's pure parts: API answers → Mesh, edges with verdicts, and the topology layout."""
from __future__ import annotations

import itertools

from nomadmesh.ui import model, topology

ALLOC = "0b6f5e2a-1111-2222-3333-444455556666"


def row(name: str, sid: str, checks: list[tuple[str, str, str]] = (), kind: str = "",
        proxy: dict | None = None, port: int = 9000, tags: list[str] = ()) -> dict:
    svc = {"ID": sid, "Service": name, "Port": port, "Address": "10.0.0.1", "Tags": list(tags)}
    if kind:
        svc["Kind"] = kind
        svc["Proxy"] = proxy or {}
    return {"Node": {"Address": "127.0.0.1"}, "Service": svc,
            "Checks": [{"Name": "Serf Health Status", "Status": "passing", "ServiceID": ""}]
            + [{"Name": n, "Status": s, "Output": o, "ServiceID": sid} for n, s, o in checks]}


def entry(dst: str, *sources: tuple[str, str]) -> dict:
    return {"Kind": "service-intentions", "Name": dst,
            "Sources": [{"Name": s, "Action": a, "Description": f"{s} {a}"} for s, a in sources]}


def sample_mesh(default_allow: bool = True, entries: list[dict] = ()) -> model.Mesh:
    web_id = f"_nomad-task-{ALLOC}-group-web-web-http"
    health = {
        "web": [row("web", web_id, [("http", "warning", "HTTP GET: 429 slow down")], tags=["v1"])],
        "web-sidecar-proxy": [row("web-sidecar-proxy", web_id + "-sidecar-proxy",
                                  [("Connect Sidecar Listening", "passing", "")], kind="connect-proxy",
                                  proxy={"DestinationServiceID": web_id,
                                         "Upstreams": [{"DestinationName": "api", "LocalBindPort": 7001}]},
                                  port=21000)],
        "api": [row("api", "api-1", [("tcp", "passing", "ok")]), row("api", "api-2", [("tcp", "critical", "refused")])],
        "api-sidecar-proxy": [row("api-sidecar-proxy", "api-1-sidecar-proxy", [("listening", "critical", "no")],
                                  kind="connect-proxy", proxy={"DestinationServiceID": "api-1", "Upstreams": [
                                      {"DestinationName": "db", "LocalBindPort": 7002}]}, port=21001)],
        "db": [row("db", "db-1")],
    }
    allocs = [{"ID": ALLOC, "JobID": "web", "TaskGroup": "web", "ClientStatus": "running",
               "TaskStates": {"web": {}, "connect-proxy-web": {}}}]
    return model.build_mesh(health, allocs, entries, default_allow)


def test_services_instances_sidecars_and_allocations() -> None:
    mesh = sample_mesh()
    assert [s.name for s in mesh.services] == ["api", "db", "web"]  # proxies sit beside, not as services
    web = mesh.service("web")
    (inst,) = web.instances
    assert inst.health == "warning" and inst.checks[0].output == "HTTP GET: 429 slow down"
    assert [c.name for c in inst.checks] == ["http"]  # the node's serf check says nothing about web
    assert inst.sidecar.port == 21000 and inst.sidecar.up
    assert inst.sidecar.upstreams == (model.Upstream("api", 7001),)
    assert inst.alloc.job == "web" and inst.alloc.short_id == ALLOC[:8]
    assert inst.alloc.tasks == ("connect-proxy-web", "web")
    api = mesh.service("api")
    assert api.health == "critical"  # the worst instance decides
    assert api.instances[0].sidecar and not api.instances[0].sidecar.up and api.instances[1].sidecar is None
    assert api.instances[0].alloc is None  # not a Nomad service ID
    assert mesh.service("db").health == "passing" and not mesh.service("db").has_sidecar


def test_edge_verdicts_allowed_denied_warning_unused() -> None:
    mesh = sample_mesh(default_allow=False, entries=[entry("api", ("web", "allow")), entry("db", ("*", "deny")),
                                                     entry("web", ("db", "allow"))])
    by_pair = {(e.source, e.destination): e for e in model.edges(mesh)}
    assert by_pair[("web", "api")].verdict == model.ALLOWED
    assert by_pair[("web", "api")].intention.source == "web"
    assert by_pair[("api", "db")].verdict == model.DENIED  # * => db deny decides, on purpose
    assert by_pair[("api", "db")].intention.source == "*"
    assert by_pair[("db", "web")].verdict == model.UNUSED  # allowed, but db declares no upstream to web
    ups, downs = model.edges_of(mesh, "api")
    assert [(e.source, e.destination) for e in ups] == [("api", "db")]
    assert [(e.source, e.destination) for e in downs] == [("web", "api")]


def test_declared_upstream_denied_by_default_is_a_warning() -> None:
    mesh = sample_mesh(default_allow=False)
    verdicts = {(e.source, e.destination): e.verdict for e in model.edges(mesh)}
    assert verdicts == {("web", "api"): model.WARNING, ("api", "db"): model.WARNING}
    assert all(e.intention is None and "default policy (deny)" in e.reason for e in model.edges(mesh))


def test_malformed_entry_is_a_problem_not_a_crash() -> None:
    bad = {"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "maybe"}]}
    mesh = sample_mesh(entries=[bad, entry("api", ("web", "deny"))])
    assert mesh.problems and "service-intentions 'db'" in mesh.problems[0]
    assert [(i.source, i.destination) for i in mesh.intentions] == [("web", "api")]


def test_intentions_are_listed_in_precedence_order() -> None:
    mesh = sample_mesh(entries=[entry("*", ("*", "deny"), ("web", "allow")),
                                entry("db", ("*", "allow"), ("api", "deny"))])
    assert [(i.source, i.destination, i.precedence) for i in mesh.intentions] == [
        ("api", "db", 9), ("*", "db", 8), ("web", "*", 6), ("*", "*", 5)]


def _boxes_overlap(a: topology.NodeBox, b: topology.NodeBox) -> bool:
    return (abs(a.x - b.x) < topology.NODE_W + topology.GAP_X // 2
            and abs(a.y - b.y) < topology.NODE_H + topology.GAP_Y // 2)


def edge(src: str, dst: str, verdict: str = model.ALLOWED) -> model.Edge:
    return model.Edge(src, dst, verdict, "", None)


def test_layout_of_fifty_services_is_a_grid_without_overlaps() -> None:
    names = [f"svc-{i:02d}" for i in range(50)]
    # Ten chains of five: svc-00 -> svc-01 -> ... -> svc-04, and so on.
    edges = [edge(names[i], names[i + 1]) for i in range(50) if i % 5 != 4]
    lay = topology.layout(dict.fromkeys(names, "passing"), edges)
    assert len(lay.nodes) == 50 and len(lay.edges) == 40
    for a, b in itertools.combinations(lay.nodes, 2):
        assert not _boxes_overlap(a, b), (a, b)
    for n in lay.nodes:
        assert n.x >= 0 and n.x + topology.NODE_W <= lay.width and n.y >= 0 and n.y + topology.NODE_H <= lay.height
    x = {n.name: n.x for n in lay.nodes}
    assert all(x[e.source] < x[e.destination] for e in edges)  # callers sit left of what they call
    # Ten services per layer wrap into no more than MAX_PER_COLUMN rows: a screen, not a scroll.
    assert lay.height <= 2 * topology.MARGIN + topology.MAX_PER_COLUMN * (topology.NODE_H + topology.GAP_Y)


def test_layout_of_fifty_unconnected_services_wraps_columns() -> None:
    lay = topology.layout({f"s{i}": "passing" for i in range(50)}, [])
    columns = {n.x for n in lay.nodes}
    assert len(columns) == -(-50 // topology.MAX_PER_COLUMN)
    assert len({(n.x, n.y) for n in lay.nodes}) == 50


def test_layout_survives_cycles_self_loops_and_unregistered_upstreams() -> None:
    edges = [edge("a", "b"), edge("b", "c"), edge("c", "a", model.DENIED), edge("a", "a"),
             edge("c", "ghost", model.WARNING)]
    lay = topology.layout({"a": "passing", "b": "critical", "c": "warning"}, edges)
    nodes = {n.name: n for n in lay.nodes}
    assert nodes["ghost"].health is None  # drawn, marked as not registered
    assert nodes["a"].x < nodes["b"].x < nodes["c"].x < nodes["ghost"].x
    assert len(lay.edges) == 5 and all(p.d.startswith("M") for p in lay.edges)


def test_long_names_are_shortened_in_the_box_only() -> None:
    name = "a-very-long-service-name-that-would-not-fit"
    (node,) = topology.layout({name: "passing"}, []).nodes
    assert node.name == name and node.label.endswith("…") and len(node.label) == topology.MAX_LABEL


def test_health_rows_join_each_instance_with_its_nodes_checks_and_its_own_only() -> None:
    n1, n2 = {"Node": "n1", "Address": "10.0.0.1"}, {"Node": "n2", "Address": "10.0.0.2"}
    services_of = {"n1": {"web-1": {"ID": "web-1", "Service": "web"}, "db-1": {"ID": "db-1", "Service": "db"}},
                   "n2": {"web-2": {"ID": "web-2", "Service": "web"}}}
    checks = [{"Node": "n1", "CheckID": "web-ttl", "ServiceID": "web-1", "Status": "passing"},
              {"Node": "n1", "CheckID": "serfHealth", "ServiceID": "", "Status": "passing"},
              {"Node": "n2", "CheckID": "_node_maintenance", "ServiceID": "", "Status": "critical"},
              {"Node": "n1", "CheckID": "db-ttl", "ServiceID": "db-1", "Status": "critical"},
              {"Node": "n2", "CheckID": "web-ttl", "ServiceID": "web-2", "Status": "passing"}]
    rows = model.health_rows([n1, n2], services_of, checks)
    ids = {name: [(r["Node"]["Node"], r["Service"]["ID"], [c["CheckID"] for c in r["Checks"]]) for r in rs]
           for name, rs in rows.items()}
    assert ids == {"web": [("n1", "web-1", ["web-ttl", "serfHealth"]),
                           ("n2", "web-2", ["_node_maintenance", "web-ttl"])],
                   "db": [("n1", "db-1", ["serfHealth", "db-ttl"])]}


def test_consuls_own_server_service_is_not_a_node_of_the_mesh() -> None:
    # Every Consul server registers service "consul" (ID "consul") for itself: the control plane. A
    # service a user names "consul" under another ID stays.
    health = {"consul": [row("consul", "consul"), row("consul", "consul-2")], "web": [row("web", "web-1")]}
    mesh = model.build_mesh(health, [], [], True)
    assert {s.name: [i.id for i in s.instances] for s in mesh.services} == {"consul": ["consul-2"], "web": ["web-1"]}


def test_an_allow_no_upstream_declares_is_a_tproxy_edge_from_a_transparent_caller_else_intention_only() -> None:
    health = {
        "web": [row("web", "web-1")],
        "web-sidecar-proxy": [row("web-sidecar-proxy", "web-1-sidecar-proxy", kind="connect-proxy",
                                  proxy={"DestinationServiceID": "web-1", "Mode": "transparent"})],
        "api": [row("api", "api-1")],
        "api-sidecar-proxy": [row("api-sidecar-proxy", "api-1-sidecar-proxy", kind="connect-proxy",
                                  proxy={"DestinationServiceID": "api-1", "Mode": "direct"})],
        "db": [row("db", "db-1")],
    }
    mesh = model.build_mesh(health, [], [entry("db", ("web", "allow"), ("api", "allow"))], False)
    assert mesh.service("web").transparent and not mesh.service("api").transparent
    by_pair = {(e.source, e.destination): e for e in model.edges(mesh)}
    assert by_pair[("web", "db")].verdict == model.TPROXY and "transparent proxy" in by_pair[("web", "db")].reason
    assert by_pair[("api", "db")].verdict == model.UNUSED and "intention only" in by_pair[("api", "db")].reason

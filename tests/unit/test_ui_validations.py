"""The validations page's findings (nomadmesh.ui.validations): `mesh check` on the live upstreams, L7 on
tcp, `plan`'s job changes and orphans, each linked to its edge or node. Pure."""
from __future__ import annotations

from nomadmesh.deploy.plan import JobChange, Plan
from nomadmesh.errors import Problem
from nomadmesh.mesh import intentions as ixn
from nomadmesh.ui import model, validations as v


def mesh(intentions: list[ixn.Intention], upstreams: dict[str, tuple[str, ...]], default_allow: bool) -> model.Mesh:
    def service(name: str) -> model.Service:
        sidecar = model.Sidecar(f"{name}-sidecar", f"{name}-sidecar-proxy", "10.0.0.1", 21000, "passing", (),
                                tuple(model.Upstream(u, 7000) for u in upstreams.get(name, ())))
        return model.Service(name, (), (model.Instance(name, "10.0.0.1", 8080, (), "passing", (), sidecar, None),))

    return model.Mesh(tuple(service(n) for n in sorted(upstreams)), tuple(ixn.sort_by_precedence(intentions)),
                      default_allow)


def test_mesh_check_runs_on_the_sidecars_upstreams_and_links_each_finding() -> None:
    l7 = ixn.permissions_from_json([{"Action": "allow", "HTTP": {"PathPrefix": "/"}}])
    m = mesh([ixn.Intention("web", "api", "deny"), ixn.Intention("*", "db", None, l7),
              ixn.Intention("web", "cache", "allow")], {"web": ("api", "db"), "api": (), "db": (), "cache": ()},
             True)
    found = {(f.code, f.edge, f.node) for f in v.mesh_findings(m)}
    assert found == {("upstream-denied", ("web", "api"), None), ("per-request", ("web", "db"), None),
                     ("unused-allow", ("web", "cache"), None)}
    # L7 on a destination that speaks tcp: only destinations with L7 intentions are asked about.
    assert v.l7_destinations(m) == ["db"]
    (tcp,) = v.l7_on_tcp(m, {"db": "tcp"})
    assert (tcp.code, tcp.node, tcp.edge) == ("l7-on-tcp", "db", None) and "* => db has L7 permissions" in tcp.message
    assert v.l7_on_tcp(m, {"db": "http"}) == []


def test_plan_findings_say_drift_changes_conflicts_and_orphans() -> None:
    plan = Plan((JobChange("a", "noop", {}), JobChange("b", "update", {}, reason="drift: changed outside nomadmesh: x"),
                 JobChange("c", "create", {}, reason="new job"), JobChange("d", "conflict", {}, reason="not ours"),
                 JobChange("e", "update", {}, reason="definition changed")))
    got = v.ordered(v.plan_findings(plan, ["z"]))
    assert [(f.severity, f.code, f.node) for f in got] == [
        ("error", "job-conflict", "d"), ("warning", "drift", "b"), ("warning", "orphan", "z"),
        ("info", "job-changed", "e"), ("info", "job-new", "c")]
    (spec,) = v.spec_findings([Problem("nomadmesh.json", "intentions[0].permissions", "L7 permissions need an HTTP "
                                       "protocol, but 'db' is tcp")])
    assert spec.severity == "error" and spec.message.startswith("nomadmesh.json: intentions[0].permissions: L7")

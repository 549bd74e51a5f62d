"""Pure parts of Connect in the agent: Nomad-style sidecar injection (connect_hook) and the
catalog -> ProxySnapshot builder (connect/proxies). Through the API: test_connect_agent_inject_http.py."""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.connect import identity
from nomadmesh.agent.connect.proxies import MeshView, build_all, endpoints
from nomadmesh.agent.nomad import connect_hook, spec
from nomadmesh.agent.nomad.services import registrations
from support.connect_support import pinned_ca
from support.nomad_jobs import rendered_sample_job


def alloc_for(job: dict[str, Any], ports: dict[str, tuple[int, int]]) -> dict[str, Any]:
    tg = job["TaskGroups"][0]
    return {"ID": "a1b2c3d4-0000-0000-0000-000000000000", "Job": job, "TaskGroup": tg["Name"],
            "NetworkStatus": {"Address": "10.9.0.5"},
            "AllocatedResources": {"Shared": {"Ports": [
                {"Label": k, "Value": v, "To": to} for k, (v, to) in ports.items()]}}}


def test_bridge_group_gets_proxy_and_expose_ports_host_group_none() -> None:
    job = rendered_sample_job("order")
    tg = job["TaskGroups"][0]
    ports = connect_hook.extra_ports(job, tg)
    assert ports[0] == {"Label": "connect-proxy-order", "Value": 0, "To": -1}
    assert len(ports) == 2 and ports[1]["Label"].startswith("svc_order_ck_") and ports[1]["To"] == -1
    host = dict(tg, Networks=[{"Mode": "host"}])
    assert connect_hook.extra_ports(job, host) == [] and connect_hook.extra_tasks(job, host) == []


def test_injected_task_is_nomads_and_sidecar_task_overrides() -> None:
    job = rendered_sample_job("tax")
    tg = job["TaskGroups"][0]
    (task,) = connect_hook.extra_tasks(job, tg)
    assert task["Name"] == "connect-proxy-tax" and task["Kind"] == "connect-proxy:tax"
    assert task["Lifecycle"] == {"Hook": "prestart", "Sidecar": True} and task["Driver"] == "raw_exec"
    args = task["Config"]["args"]
    assert args[args.index("-c") + 1] == "${NOMAD_SECRETS_DIR}/envoy_bootstrap.json"
    assert "--drain-time-s" in args and task["Resources"] == {"CPU": 250, "MemoryMB": 128}
    tg["Services"][0]["Connect"]["SidecarTask"] = {"Config": {"command": "/opt/envoy"}, "Env": {"A": "1"}}
    (over,) = connect_hook.extra_tasks(job, tg)
    assert over["Config"]["command"] == "/opt/envoy" and over["Config"]["args"] == args
    assert over["Env"] == {"A": "1"}


def test_sidecar_registration_and_exposed_check_address() -> None:
    job = rendered_sample_job("invoice")
    expose = connect_hook.extra_ports(job, job["TaskGroups"][0])[1]["Label"]
    alloc = alloc_for(job, {"connect-proxy-invoice": (25000, -1), expose: (26000, -1)})
    (reg,) = registrations(alloc)
    side = reg["Connect"]["SidecarService"]
    assert side["Port"] == 25000 and side["Address"] == "127.0.0.1"
    proxy = side["Proxy"]
    assert proxy["DestinationServiceID"] == reg["ID"] and proxy["LocalServicePort"] == 5001
    assert proxy["Config"] == {"protocol": "http", "bind_address": "0.0.0.0", "bind_port": 25000}  # invoice is http
    assert proxy["Upstreams"] == [{"DestinationName": "tax", "LocalBindPort": 6002}]
    assert proxy["Expose"]["Paths"] == [{"Path": "/health", "Protocol": "http", "LocalPathPort": 5001,
                                         "ListenerPort": 26000}]
    assert side["TaggedAddresses"]["nomad_bridge"] == {"Address": "10.9.0.5", "Port": 25000}
    # The app's check goes through the expose listener's host port, not the unreachable app port.
    assert reg["Checks"][0]["HTTP"] == "http://127.0.0.1:26000/health"
    boot = connect_hook.bootstrap_for(alloc, connect_hook.extra_tasks(job, job["TaskGroups"][0])[0],
                                      "unix:///tmp/x.sock")
    assert boot["node"]["id"] == reg["ID"] + "-sidecar-proxy"
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.0.0.2", "port_value": 19000}


def proxy(svc: str, sid: str, port: int, upstreams: list[dict[str, Any]] = (),
          bridge: tuple[str, int] | None = None) -> dict[str, Any]:
    doc = {"ID": sid, "Service": f"{svc}-sidecar-proxy", "Kind": "connect-proxy", "Address": "127.0.0.1",
           "Port": port, "Proxy": {"DestinationServiceName": svc, "LocalServicePort": 8080,
                                   "Upstreams": list(upstreams), "Config": {"bind_port": port}}}
    if bridge:
        doc["TaggedAddresses"] = {"nomad_bridge": {"Address": bridge[0], "Port": bridge[1]}}
    return doc


def view(services: list[dict[str, Any]], checks: list[dict[str, Any]], entries: dict[str, Any]) -> MeshView:
    ca = pinned_ca()
    return MeshView(services=tuple(services), checks=tuple(checks), entries=entries, datacenter="dc1",
                    trust_domain=ca.trust_domain, roots_pem=ca.root_pem, default_allow=True)


def test_snapshots_from_catalog_health_intentions_and_protocol() -> None:
    web = proxy("web", "web-1-sidecar", 21000, [{"DestinationName": "db", "LocalBindPort": 9191}])
    db1 = proxy("db", "db-1-sidecar", 21001, bridge=("10.9.0.7", 24000))
    db2 = proxy("db", "db-2-sidecar", 21002)
    checks = [{"ServiceID": "db-1-sidecar", "Status": "passing"}, {"ServiceID": "db-2-sidecar", "Status": "critical"}]
    entries = {
        "service-intentions/db": {"Kind": "service-intentions", "Name": "db",
                                  "Sources": [{"Name": "web", "Action": "deny"}]},
        "service-intentions/other": {"Kind": "service-intentions", "Name": "other",
                                     "Sources": [{"Name": "web", "Action": "deny"}]},
        "service-defaults/db": {"Kind": "service-defaults", "Name": "db", "Protocol": "http"},
    }
    v = view([web, db1, db2], checks, entries)
    # Only the healthy instance, at its bridge address (another namespace cannot dial 127.0.0.1).
    assert endpoints(v, "db") == (("10.9.0.7", 24000),)
    snaps = build_all(v, lambda s: ("cert-" + s, "key-" + s))
    assert set(snaps) == {"web-1-sidecar", "db-1-sidecar", "db-2-sidecar"}
    w, d = snaps["web-1-sidecar"], snaps["db-1-sidecar"]
    (db_target,) = w.chain_of(w.upstreams[0]).targets.values()
    assert w.target_endpoints(w.upstreams[0], db_target) == (("10.9.0.7", 24000),)
    assert w.upstreams[0].local_bind_port == 9191
    assert w.protocol == "tcp" and d.protocol == "http"
    assert [i.source for i in d.intentions] == ["web"] and w.intentions == ()
    assert d.leaf_cert_pem == "cert-db" and d.public_listener.port == 21001
    assert w.upstream_cluster(w.upstreams[0]) == identity.sni(v.trust_domain, "dc1", "db")


def test_host_sidecar_registered_through_the_agent_api_is_dialled_on_loopback() -> None:
    """`connect envoy --sidecar-for` proxies: no nomad_bridge address, Address "" (Consul's "the
    node's"), so another host Envoy dials 127.0.0.1 and the sidecar's own port."""
    host = dict(proxy("tax", "tax-sidecar-proxy", 21500), Address="")
    v = view([host, proxy("invoice", "invoice-sidecar-proxy", 21501,
                          [{"DestinationName": "tax", "LocalBindPort": 7002}])],
             [{"ServiceID": "tax-sidecar-proxy", "Status": "passing"}], {})
    assert endpoints(v, "tax") == (("127.0.0.1", 21500),)
    snap = build_all(v, lambda s: ("c", "k"))["tax-sidecar-proxy"]
    assert (snap.public_listener.address, snap.public_listener.port) == ("0.0.0.0", 21500)


# --- injection at registration (Nomad's job_endpoint_hook_connect) -----------------------------

def prepared(name: str) -> dict[str, Any]:
    return spec.prepare(rendered_sample_job(name))


def test_registration_adds_the_sidecar_task_and_ports_to_the_stored_job() -> None:
    job = prepared("invoice")
    tg = job["TaskGroups"][0]
    assert [t["Name"] for t in tg["Tasks"]] == ["invoice", "connect-proxy-invoice"]
    side = tg["Tasks"][1]
    assert side["Kind"] == "connect-proxy:invoice" and side["Lifecycle"] == {"Hook": "prestart", "Sidecar": True}
    assert side["LogConfig"]["MaxFiles"] > 0  # canonicalized like a submitted task
    added = {p["Label"]: p["To"] for p in tg["Networks"][0]["DynamicPorts"]}
    assert added.pop("connect-proxy-invoice") == -1
    assert [label for label, to in added.items() if label.startswith("svc_invoice_ck_") and to == -1]
    # Idempotent: the stored job submitted again (nomad job inspect | nomad job run) is the same job.
    assert spec.prepare(job) == job
    # At allocation time there is nothing left to add, so the runner's injection is a no-op.
    assert connect_hook.extra_tasks(job, tg) == []
    have = {p["Label"] for p in tg["Networks"][0]["DynamicPorts"]}
    assert {p["Label"] for p in connect_hook.extra_ports(job, tg)} <= have


def test_a_declared_sidecar_task_is_kept_and_groups_without_connect_are_untouched() -> None:
    raw = rendered_sample_job("tax")
    tg = raw["TaskGroups"][0]
    own = {"Name": "my-envoy", "Kind": "connect-proxy:tax", "Driver": "raw_exec",
           "Config": {"command": "/bin/true"}, "Lifecycle": {"Hook": "prestart", "Sidecar": True}}
    tg["Tasks"] = tg["Tasks"] + [own]
    job = spec.prepare(raw)
    assert [t["Name"] for t in job["TaskGroups"][0]["Tasks"]] == ["tax", "my-envoy"]
    plain = rendered_sample_job("tax")
    plain["TaskGroups"][0]["Services"][0].pop("Connect")
    before = spec.canonicalize(plain)
    assert spec.prepare(plain) == before


def test_a_job_stored_before_injection_lacks_the_sidecar_the_hook_would_add() -> None:  # migrated at start
    old = rendered_sample_job("tax")  # what an older agent stored: canonical, no sidecar task or ports
    tg = spec.canonicalize(old)["TaskGroups"][0]
    assert [t["Name"] for t in connect_hook.extra_tasks(old, tg)] == ["connect-proxy-tax"]
    assert connect_hook.extra_ports(old, tg)[0]["Label"] == "connect-proxy-tax"

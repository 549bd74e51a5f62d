"""Consul agent, catalog and health endpoints of the dev agent, over real HTTP with py-consul:
registration with Consul's sidecar defaults, checks really run (http and tcp) and their status
changes reach the catalog, deregistration, --config-dir, bad registrations."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import consul
import pytest
import requests

from support.agents import RunningAgent
from support.waiting import wait_until


class Target:
    """A real HTTP server whose status code the test controls (what an http check probes)."""

    def __init__(self) -> None:
        self.status = 200
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"ok" if target.status < 400 else b"broken"
                self.send_response(target.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def c(module_agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=module_agent.consul_port, connections_timeout=10)


def check_status(c: consul.Consul, check_id: str) -> str | None:
    chk = c.agent.checks().get(check_id)
    return chk["Status"] if chk else None


def test_agent_self_names_the_node_and_envoy(c: consul.Consul, module_agent: RunningAgent) -> None:
    me = c.agent.self()
    assert me["Config"]["Datacenter"] == "dc1"
    assert me["Config"]["NodeName"]
    assert len(me["Config"]["NodeID"]) == 36
    assert me["xDS"]["SupportedProxies"]["envoy"] == ["1.40.0"]
    # No xDS TCP port by default (Consul's ports.grpc = -1); the unix socket is published instead.
    assert me["xDS"]["Port"] == -1 and me["DebugConfig"]["GRPCPort"] == -1
    assert me["DebugConfig"]["GRPCAddrs"] == [f"unix://{module_agent.data_dir}/xds.sock"]
    assert c.status.leader().endswith(":8300")
    assert c.status.peers() == [c.status.leader()]
    assert me["Stats"]["consul"]["leader_addr"] == c.status.leader()  # what py-consul's own suite checks
    # a ServiceAddress's fields are decoded whatever their case, as Go decodes them (py-consul's suite sends lower)
    assert c.agent.service.register("self-tagged", tagged_addresses={"lan": {"address": "10.0.0.1", "port": 80}})
    assert c.agent.services()["self-tagged"]["TaggedAddresses"] == {"lan": {"Address": "10.0.0.1", "Port": 80}}
    c.agent.service.deregister("self-tagged")
    raft = c.operator.raft_config()
    assert raft["Index"] == 0
    assert [(s["Address"], s["Leader"], s["Voter"]) for s in raft["Servers"]] == [(c.status.leader(), True, True)]


def test_register_with_sidecar_applies_consul_defaults(c: consul.Consul) -> None:
    c.agent.service.register("side-web", service_id="side-web-1", port=8080, tags=["v1"], meta={"team": "a"},
                             connect={"sidecar_service": {"proxy": {"upstreams": [
                                 {"destination_name": "side-db", "local_bind_port": 9191}]}}})
    try:
        services = c.agent.services()
        parent, sidecar = services["side-web-1"], services["side-web-1-sidecar-proxy"]
        assert parent["Service"] == "side-web" and parent["Port"] == 8080 and "Kind" not in parent
        assert sidecar["Service"] == "side-web-sidecar-proxy"
        assert sidecar["Kind"] == "connect-proxy"
        assert 21000 <= sidecar["Port"] <= 21255
        assert sidecar["Tags"] == ["v1"] and sidecar["Meta"] == {"team": "a"}  # inherited from the parent
        proxy = sidecar["Proxy"]
        assert proxy["DestinationServiceName"] == "side-web"
        assert proxy["DestinationServiceID"] == "side-web-1"
        assert proxy["LocalServiceAddress"] == "127.0.0.1"
        assert proxy["LocalServicePort"] == 8080
        assert proxy["Upstreams"] == [{"DestinationName": "side-db", "DestinationType": "service",
                                       "LocalBindPort": 9191}]
        checks = c.agent.checks()
        listening = checks["service:side-web-1-sidecar-proxy:1"]
        aliasing = checks["service:side-web-1-sidecar-proxy:2"]
        assert listening["Name"] == "Connect Sidecar Listening"
        assert listening["Definition"]["TCP"] == f"127.0.0.1:{sidecar['Port']}"
        assert listening["Interval"] == "10s"
        assert aliasing["Name"] == "Connect Sidecar Aliasing side-web-1"
        assert aliasing["Type"] == "alias"
        # the parent has no checks, so its alias is passing; nothing listens on the proxy port
        assert aliasing["Status"] == "passing"
        assert wait_until(lambda: check_status(c, listening["CheckID"]) == "critical")

        # a second sidecar takes the next free port of the range
        c.agent.service.register("side-api", service_id="side-api-1", port=8081,
                                 connect={"sidecar_service": {}})
        second = c.agent.services()["side-api-1-sidecar-proxy"]["Port"]
        assert second != sidecar["Port"] and 21000 <= second <= 21255

        _, connect_rows = c.catalog.connect("side-web")
        assert [r["ServiceID"] for r in connect_rows] == ["side-web-1-sidecar-proxy"]
        assert connect_rows[0]["ServiceProxy"]["DestinationServiceName"] == "side-web"
        _, health_rows = c.health.connect("side-web")
        assert [r["Service"]["ID"] for r in health_rows] == ["side-web-1-sidecar-proxy"]
    finally:
        c.agent.service.deregister("side-web-1")
        c.agent.service.deregister("side-api-1")
    services = c.agent.services()
    # deregistering the parent removes its sidecar and every check of both
    assert not any(sid.startswith(("side-web-1", "side-api-1")) for sid in services)
    assert not any(chk["ServiceID"].startswith(("side-web-1", "side-api-1")) for chk in c.agent.checks().values())


def test_http_and_tcp_checks_run_and_status_changes_reach_health(c: consul.Consul, target: Target) -> None:
    c.agent.service.register(
        "probe", service_id="probe-1", port=target.port,
        check=consul.Check.http(f"http://127.0.0.1:{target.port}/health", interval="200ms", timeout="1s"),
        extra_checks=[{"Name": "port", "TCP": f"127.0.0.1:{target.port}", "Interval": "200ms", "Timeout": "1s"}],
    )
    try:
        ids = sorted(k for k, v in c.agent.checks().items() if v["ServiceID"] == "probe-1")
        assert ids == ["service:probe-1:1", "service:probe-1:2"]
        wait_until(lambda: all(check_status(c, i) == "passing" for i in ids))
        http_check = c.agent.checks()["service:probe-1:1"]
        assert http_check["Output"].startswith(f"HTTP GET http://127.0.0.1:{target.port}/health: 200 OK")
        assert http_check["Type"] == "http"
        assert [r["Service"]["ID"] for r in c.health.service("probe", passing=True)[1]] == ["probe-1"]

        target.status = 500
        wait_until(lambda: check_status(c, "service:probe-1:1") == "critical")
        assert check_status(c, "service:probe-1:2") == "passing"  # tcp still connects
        assert c.health.service("probe", passing=True)[1] == []
        _, all_rows = c.health.service("probe")
        assert [ch["CheckID"] for ch in all_rows[0]["Checks"]] == ["serfHealth", *ids]

        target.status = 429
        wait_until(lambda: check_status(c, "service:probe-1:1") == "warning")
        target.status = 200
        wait_until(lambda: check_status(c, "service:probe-1:1") == "passing")
        _, by_name = c.health.checks("probe")
        assert sorted(ch["CheckID"] for ch in by_name) == ids
    finally:
        c.agent.service.deregister("probe-1")


def test_catalog_views(c: consul.Consul) -> None:
    c.agent.service.register("cat-a", service_id="cat-a-1", port=7001, tags=["x"], address="127.0.0.5")
    c.agent.service.register("cat-a", service_id="cat-a-2", port=7002, tags=["y"])
    try:
        _, services = c.catalog.services()
        assert services["cat-a"] == ["x", "y"]
        _, rows = c.catalog.service("cat-a")
        assert [(r["ServiceID"], r["ServicePort"], r["ServiceAddress"]) for r in rows] == [
            ("cat-a-1", 7001, "127.0.0.5"), ("cat-a-2", 7002, "")]
        _, tagged = c.catalog.service("cat-a", tag="y")
        assert [r["ServiceID"] for r in tagged] == ["cat-a-2"]
        _, nodes = c.catalog.nodes()
        assert len(nodes) == 1 and nodes[0]["Node"] == c.agent.self()["Config"]["NodeName"]
        assert rows[0]["Node"] == nodes[0]["Node"]
        assert c.catalog.service("no-such-service")[1] == []
    finally:
        c.agent.service.deregister("cat-a-1")
        c.agent.service.deregister("cat-a-2")


def test_reregistering_keeps_unchanged_check_status(c: consul.Consul, target: Target) -> None:
    chk = consul.Check.http(f"http://127.0.0.1:{target.port}/", interval="200ms")
    c.agent.service.register("rereg", service_id="rereg-1", port=target.port, check=chk)
    try:
        wait_until(lambda: check_status(c, "service:rereg-1") == "passing")
        c.agent.service.register("rereg", service_id="rereg-1", port=target.port, check=chk, tags=["new"])
        assert check_status(c, "service:rereg-1") == "passing"
        assert c.agent.services()["rereg-1"]["Tags"] == ["new"]
    finally:
        c.agent.service.deregister("rereg-1")


def test_deregister_unknown_service_is_404(module_agent: RunningAgent) -> None:
    r = requests.put(f"{module_agent.consul_addr}/v1/agent/service/deregister/nope", timeout=5)
    assert r.status_code == 404
    assert 'Unknown service ID "nope"' in r.text


@pytest.mark.parametrize("body, needle", [
    ("{not json", "Request decode failed"),
    ('{"ID": "x"}', "Name: missing service name"),
    ('{"Name": "x", "Port": "eighty"}', "Port: must be an integer"),
    ('{"Name": "x", "Tags": "a,b"}', "Tags: must be a list"),
    ('{"Name": "x", "Check": {"HTTP": "http://127.0.0.1:1/"}}', "Interval must be > 0"),
    ('{"Name": "x", "Connect": {"SidecarService": {"Port": true}}}', "Connect.SidecarService.Port: must be an integer"),
    ("[1, 2]", "must be a JSON object"),
])
def test_bad_registrations_are_400_and_change_nothing(module_agent: RunningAgent, body: str, needle: str) -> None:
    before = requests.get(f"{module_agent.consul_addr}/v1/agent/services", timeout=5).json()
    r = requests.put(f"{module_agent.consul_addr}/v1/agent/service/register", data=body, timeout=5)
    assert r.status_code == 400
    assert needle in r.text and len(r.text.strip().splitlines()) == 1
    assert requests.get(f"{module_agent.consul_addr}/v1/agent/services", timeout=5).json() == before


def test_snake_case_definition_is_accepted_like_a_config_file(module_agent: RunningAgent) -> None:
    body = {"name": "snake", "port": 5002, "tags": ["t"],
            "connect": {"sidecar_service": {"proxy": {"upstreams": [{"destination_name": "tax",
                                                                     "local_bind_port": 6002}]}}}}
    addr = module_agent.consul_addr
    assert requests.put(f"{addr}/v1/agent/service/register", json=body, timeout=5).status_code == 200
    try:
        services = requests.get(f"{addr}/v1/agent/services", timeout=5).json()
        assert services["snake"]["Port"] == 5002
        assert services["snake-sidecar-proxy"]["Proxy"]["Upstreams"][0]["LocalBindPort"] == 6002
    finally:
        requests.put(f"{addr}/v1/agent/service/deregister/snake", timeout=5)


def test_config_dir_registers_seed_definitions_at_start(agent_factory: Callable[..., RunningAgent],
                                                         tmp_path: Path) -> None:
    conf = tmp_path / "consul.d"
    conf.mkdir()
    (conf / "order.json").write_text(json.dumps({"service": {"name": "order", "tags": ["order"], "port": 5000}}))
    (conf / "tax.json").write_text(json.dumps({"service": {"name": "tax", "port": 5002,
                                                           "connect": {"sidecar_service": {}}}}))
    (conf / "more.json").write_text(json.dumps({"services": [{"name": "invoice", "port": 5001}]}))
    (conf / "notes.txt").write_text("not a definition")
    agent = agent_factory("--config-dir", str(conf), "--datacenter", "zone1", "--node", "host1")
    c = consul.Consul(host="127.0.0.1", port=agent.consul_port)
    services = c.agent.services()
    assert sorted(services) == ["invoice", "order", "tax", "tax-sidecar-proxy"]
    assert services["order"]["Tags"] == ["order"]
    assert c.agent.self()["Config"]["Datacenter"] == "zone1"
    assert c.catalog.nodes()[1][0]["Node"] == "host1"


def test_config_dir_with_a_bad_definition_fails_naming_file_and_field(
        agent_factory: Callable[..., RunningAgent], tmp_path: Path) -> None:
    conf = tmp_path / "consul.d"
    conf.mkdir()
    (conf / "bad.json").write_text(json.dumps({"service": {"name": "x", "port": "many"}}))
    with pytest.raises(RuntimeError) as err:
        agent_factory("--config-dir", str(conf))
    assert f"Error: {conf / 'bad.json'}: service: Port: must be an integer" in str(err.value)


def test_ttl_check_is_set_through_the_agent_endpoints(c: consul.Consul, module_agent: RunningAgent) -> None:
    c.agent.service.register("ttl-svc", service_id="ttl-1", check=consul.Check.ttl("30s"))
    try:
        assert check_status(c, "service:ttl-1") == "critical"
        assert c.agent.check.ttl_pass("service:ttl-1", notes="fine") is True
        chk = c.agent.checks()["service:ttl-1"]
        assert (chk["Status"], chk["Output"], chk["Type"]) == ("passing", "fine", "ttl")
        assert c.agent.check.ttl_warn("service:ttl-1") is True
        assert check_status(c, "service:ttl-1") == "warning"
        r = requests.put(f"{module_agent.consul_addr}/v1/agent/check/pass/no-such-check", timeout=5)
        assert r.status_code == 404 and "Unknown check ID" in r.text
    finally:
        c.agent.service.deregister("ttl-1")


def test_names_and_ids_with_newlines_or_slashes_are_readable_and_removable(module_agent: RunningAgent) -> None:
    """Consul accepts any characters in service names and IDs (it only warns about DNS); whatever
    it accepts must be readable and removable by its URL-encoded ID, and the UI must keep working."""
    from urllib.parse import quote

    base = module_agent.consul_addr
    for name, sid in (("crlf\r\nname", "crlf\r\nid"), ("team/web", "team/web-1")):
        r = requests.put(f"{base}/v1/agent/service/register", json={"Name": name, "ID": sid, "Port": 80}, timeout=10)
        assert r.status_code == 200, r.text
        enc_id, enc_name = quote(sid, safe=""), quote(name, safe="")
        got = requests.get(f"{base}/v1/agent/service/{enc_id}", timeout=10)
        assert got.status_code == 200 and got.json()["Service"] == name
        health = requests.get(f"{base}/v1/health/service/{enc_name}", timeout=10)
        assert health.status_code == 200 and [e["Service"]["ID"] for e in health.json()] == [sid]
        page = requests.get(f"{base}/ui/services", timeout=10)
        assert page.status_code == 200 and "Cannot read the cluster" not in page.text
        assert requests.get(f"{base}/ui/services/{enc_name}", timeout=10).status_code == 200
        out = requests.put(f"{base}/v1/agent/service/deregister/{enc_id}", timeout=10)
        assert out.status_code == 200, out.text
        assert sid not in requests.get(f"{base}/v1/agent/services", timeout=10).json()
    # The log shows such IDs quoted, so a CR/LF in a name cannot forge a log line.
    assert "registered service 'crlf\\r\\nid'" in module_agent.log_path.read_text()


def test_objects_stored_by_an_older_agent_with_bad_names_are_removable(
        agent_factory: Callable[..., RunningAgent]) -> None:
    """A service ID with CR/LF and a job ID with a space and a '/' (refused at registration today)
    written into the state by an earlier agent (jobs keyed by ID alone, before the namespace-job-keys
    migration): after a start they are read and removed by URL."""
    from urllib.parse import quote

    from nomadmesh.agent.state import State

    agent = agent_factory()
    requests.put(f"{agent.consul_addr}/v1/agent/service/register", json={"Name": "seed", "Port": 80},
                 timeout=10).raise_for_status()
    hcl = 'job "seed" {\n  group "g" {\n    count = 0\n    task "t" {\n      driver = "docker"\n' \
          '      config { image = "redis:7" }\n    }\n  }\n}\n'
    job = requests.post(f"{agent.nomad_addr}/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True}, timeout=10)
    requests.post(f"{agent.nomad_addr}/v1/jobs", json={"Job": job.json()}, timeout=10).raise_for_status()
    agent.stop()

    sid, name, job_id = "legacy\r\nid", "legacy\r\nname", "legacy job/one"
    state = State(agent.data_dir / "state.db")
    try:
        with state.write() as txn:
            svc = txn.get("service", "seed").value
            txn.put("service", sid, dict(svc, ID=sid, Service=name))
            stored = txn.get("job", "default/seed").value
            txn.put("job", job_id, dict(stored, ID=job_id, Name=job_id))
            txn.put("job_version", f"{job_id}/0000000000", dict(stored, ID=job_id, Name=job_id))
            done = txn.get("meta", "migrations").value
            txn.put("meta", "migrations", [m for m in done if m != "namespace-job-keys"])
    finally:
        state.close()

    agent.start()
    page = requests.get(f"{agent.consul_addr}/ui/services", timeout=10)
    assert page.status_code == 200 and "Cannot read the cluster" not in page.text
    url = f"{agent.nomad_addr}/v1/job/{quote(job_id, safe='')}"
    assert requests.get(url, timeout=10).json()["ID"] == job_id
    assert requests.delete(f"{url}?purge=true", timeout=10).status_code == 200
    assert requests.get(url, timeout=10).status_code == 404
    out = requests.put(f"{agent.consul_addr}/v1/agent/service/deregister/{quote(sid, safe='')}", timeout=10)
    assert out.status_code == 200, out.text
    assert sid not in requests.get(f"{agent.consul_addr}/v1/agent/services", timeout=10).json()

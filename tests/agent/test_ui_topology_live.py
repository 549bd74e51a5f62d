"""Issue 16: the topology as a live console over plain HTTP against a real dev agent (no sidecars run:
registrations through the Consul API). Truthful edges (an L7 edge is "per request", an upstream with no
registered instance is flagged, not green), where figures come from, the name/tag filter, and the
edge panel's allow / deny / delete through the intention forms, refused cross-site.
(Traffic figures with real sidecars and Chromium: tests/e2e/test_mesh_traffic.py.)
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from click.testing import CliRunner

from nomadmesh.cli.main import cli
from support.agents import RunningAgent
from support.consul_api import cclient, register, sources, ttl
from support.net import free_port
from support.paths import REPO
from support.waiting import wait_until


def topology(agent: RunningAgent, query: str = "") -> str:
    resp = requests.get(f"{agent.consul_addr}/ui/topology{query}", timeout=10)
    assert resp.status_code == 200
    return resp.text


def path_of(html: str, edge: str) -> str:
    m = re.search(rf'<path [^>]*data-edge="{re.escape(edge)}".*?</path>', html)
    assert m, f"no path for {edge}"
    return m.group(0)


@pytest.fixture(scope="module")
def shop(module_agent: RunningAgent) -> RunningAgent:
    register(module_agent, "t-web", upstreams=("t-api", "t-ghost"), tags=("front",))
    register(module_agent, "t-api", upstreams=("t-l7",))
    register(module_agent, "t-l7")
    for name in ("t-web", "t-api", "t-l7"):
        ttl(module_agent, name, "pass", "ok")
    c = cclient(module_agent)
    assert c.config.set("service-intentions", "t-ghost", {
        "Kind": "service-intentions", "Name": "t-ghost", "Sources": [{"Name": "t-web", "Action": "allow"}]})
    assert c.config.set("service-defaults", "t-l7", {"Kind": "service-defaults", "Name": "t-l7", "Protocol": "http"})
    assert c.config.set("service-intentions", "t-l7", {"Kind": "service-intentions", "Name": "t-l7", "Sources": [
        {"Name": "t-api", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/public"}}]}]})
    return module_agent


def test_an_unregistered_upstream_is_flagged_not_drawn_allowed(shop: RunningAgent) -> None:
    html = topology(shop)
    ghost = path_of(html, "t-web>t-ghost")
    # Allowed by its intention, but nothing is registered to call: the graph must not draw it green.
    assert 'data-verdict="allowed"' in ghost and 'data-state="broken"' in ghost
    assert "edge-allowed" not in ghost and "edge-broken" in ghost
    assert "t-ghost has no registered instance" in ghost
    assert re.search(r'data-node="t-ghost" data-health="not registered"', html)


def test_an_l7_governed_edge_is_drawn_per_request_not_denied(shop: RunningAgent) -> None:
    l7 = path_of(topology(shop), "t-api>t-l7")
    assert 'data-verdict="per-request"' in l7 and "edge-per-request" in l7 and "edge-denied" not in l7
    panel = topology(shop, "?edge=" + quote("t-api>t-l7"))
    assert 'data-panel="t-api>t-l7"' in panel and "allow PathPrefix=/public" in panel


def test_the_page_says_where_figures_come_from(shop: RunningAgent) -> None:
    html = topology(shop)  # the dev agent samples its sidecars (none run here: no figures on edges)
    assert 'data-figures="live"' in html and "the sidecars&#39; Envoy admin stats" in html
    assert "data-edge-label" not in html
    # `nomadmesh ui` against the same cluster with a Prometheus that does not answer: it says so.
    port, dead = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nomadmesh", "ui", "--port", str(port), "--consul-addr",
                             shop.consul_addr, "--nomad-addr", shop.nomad_addr, "--metrics-url",
                             f"http://127.0.0.1:{dead}"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/ui/topology"

        def page() -> str | None:
            try:
                return requests.get(url, timeout=10).text
            except requests.ConnectionError:
                return None

        html = wait_until(page, 20, what="nomadmesh ui serves")
    finally:
        proc.terminate()
        proc.wait(10)
    assert 'data-figures="none"' in html and f"Prometheus: GET http://127.0.0.1:{dead}/api/v1/query" in html


def test_filter_by_name_or_tag_keeps_matches_and_their_neighbours(shop: RunningAgent) -> None:
    html = topology(shop, "?q=front")  # t-web's tag
    nodes = set(re.findall(r'<a href="[^"]*" class="node[^"]*" data-node="([^"]+)"', html))
    assert nodes == {"t-web", "t-api", "t-ghost"}  # t-l7 is two hops away
    assert 'data-filter="front"' in html
    assert "t-l7" not in re.findall(r'data-node="([^"]+)"', topology(shop, "?q=t-web"))


def test_edge_panel_denies_and_deletes_through_the_forms_and_refuses_cross_site(shop: RunningAgent) -> None:
    back = "/ui/topology?edge=t-web%3Et-api"
    html = topology(shop, "?edge=" + quote("t-web>t-api"))
    assert 'data-panel="t-web>t-api"' in html and 'name="back" value="/ui/topology?edge=t-web%3Et-api"' in html
    form = {"source": "t-web", "destination": "t-api", "action": "deny", "description": "from the graph",
            "back": back}
    evil = requests.post(f"{shop.consul_addr}/ui/intentions", data=form, timeout=10, allow_redirects=False,
                         headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"})
    assert evil.status_code == 403 and sources(shop, "t-api") is None  # nothing written
    done = requests.post(f"{shop.consul_addr}/ui/intentions", data=form, timeout=10, allow_redirects=False)
    assert done.status_code == 303 and done.headers["Location"].endswith(back)
    assert sources(shop, "t-api") == {"t-web": "deny"}
    assert 'data-state="denied"' in path_of(topology(shop), "t-web>t-api")
    # Only this UI's topology page is a place to go back to: anything else lands on the intentions page.
    away = requests.post(f"{shop.consul_addr}/ui/intentions", timeout=10, allow_redirects=False,
                         data={**form, "action": "allow", "back": "https://attacker.example/ui/topology"})
    assert away.status_code == 303 and "/ui/intentions?notice=" in away.headers["Location"]
    gone = requests.post(f"{shop.consul_addr}/ui/intentions/delete", timeout=10, allow_redirects=False,
                         data={"source": "t-web", "destination": "t-api", "back": back})
    assert gone.status_code == 303 and gone.headers["Location"].endswith(back)
    wait_until(lambda: sources(shop, "t-api") is None, 5, what="intention deleted")


def test_agent_traffic_endpoint_samples_only_the_sidecars_it_runs_and_refuses_a_bad_window(
        shop: RunningAgent) -> None:
    url = f"{shop.consul_addr}/v1/nomadmesh/traffic"
    body = requests.get(url, timeout=15).json()
    # Three sidecars are registered, none is run by this agent's Nomad: nothing to sample, no figures.
    assert (body["sidecars"], body["edges"], body["services"]) == (0, [], [])
    assert body["sampling_s"] > 0 and "Envoy admin stats" in body["source"]
    for bad, why in (("abc", "is not a number"), ("0", "between 0 and 3600"), ("7200", "between 0 and 3600")):
        resp = requests.get(url, params={"window": bad}, timeout=5)
        assert resp.status_code == 400 and why in resp.text
    assert requests.get(url, params={"window": "30"}, timeout=15).status_code == 200


def test_whole_mesh_health_reads_equal_one_health_read_per_service(shop: RunningAgent) -> None:
    """The page reads the nodes, each node's services and every check (one read per node, not one
    per service name); joined, they must be exactly what /v1/health/service gives each name, here
    with a second (catalog-registered) node whose critical check must stay on its own service."""
    from concurrent.futures import ThreadPoolExecutor

    from nomadmesh.ui import read
    from nomadmesh.ui.api import apis_for
    from nomadmesh.ui.app import local_target

    base = shop.consul_addr
    node = f"ext-{free_port()}"
    requests.put(f"{base}/v1/catalog/register", timeout=5, json={
        "Node": node, "Address": "10.9.8.7",
        "Service": {"ID": "t-db-1", "Service": "t-db", "Port": 5432, "Tags": ["primary"]},
        "Checks": [{"CheckID": "db-alive", "Name": "db alive", "Status": "critical", "ServiceID": "t-db-1"}],
    }).raise_for_status()
    apis = apis_for(local_target("127.0.0.1", shop.nomad_port, shop.consul_port))
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            joined = read.service_health(apis.consul, pool)
        names = requests.get(f"{base}/v1/catalog/services", timeout=5).json()
        per_name = {n: requests.get(f"{base}/v1/health/service/{quote(n, safe='')}", timeout=5).json()
                    for n in names}
        assert {"t-web", "t-web-sidecar-proxy", "t-db"} <= set(joined)
        assert [c["Status"] for c in joined["t-db"][0]["Checks"]] == ["critical"]
        assert joined == per_name
    finally:
        apis.close()
        requests.put(f"{base}/v1/catalog/deregister", json={"Node": node}, timeout=5).raise_for_status()


def l7_post(agent: RunningAgent, what: str, edge: str, data: dict[str, object],
            headers: dict[str, str] | None = None) -> requests.Response:
    src, dst = edge.split(">")
    return requests.post(f"{agent.consul_addr}/ui/intentions/l7/{what}?edge={quote(edge)}", timeout=10,
                         allow_redirects=False, headers=headers,
                         data={"source": src, "destination": dst, "back": f"/ui/topology?edge={quote(edge)}", **data})


def permissions(agent: RunningAgent, dst: str, src: str) -> list[dict[str, object]] | str:
    entry = cclient(agent).config.get("service-intentions", dst)
    source = next(s for s in entry["Sources"] if s["Name"] == src)
    return source.get("Permissions") or source["Action"]


def refusal(resp: requests.Response) -> str:
    m = re.search(r'data-l7-error><strong>Not saved:</strong> (.*?)</div>', resp.text, re.S)
    assert resp.status_code == 400 and m, resp.text[:400]
    return html.unescape(m.group(1))


def test_edge_panel_adds_and_removes_l7_rules_with_the_clis_checks(shop: RunningAgent) -> None:
    edge = "t-api>t-l7"
    rule = {"action": "deny", "path_kind": "path-regex", "path": "/admin/[a-z]+", "method": ["POST", "DELETE"],
            "header": "X-Team=blue"}
    evil = l7_post(shop, "add", edge, rule, headers={"Origin": "http://attacker.example",
                                                     "Sec-Fetch-Site": "cross-site"})
    assert evil.status_code == 403 and len(permissions(shop, "t-l7", "t-api")) == 1  # nothing written
    done = l7_post(shop, "add", edge, rule)
    assert done.status_code == 303 and done.headers["Location"].endswith("/ui/topology?edge=t-api%3Et-l7")
    assert permissions(shop, "t-l7", "t-api") == [
        {"Action": "allow", "HTTP": {"PathPrefix": "/public"}},
        {"Action": "deny", "HTTP": {"PathRegex": "/admin/[a-z]+", "Methods": ["POST", "DELETE"],
                                    "Header": [{"Name": "X-Team", "Exact": "blue"}]}}]
    panel = topology(shop, "?edge=" + quote(edge))
    assert "deny PathRegex=/admin/[a-z]+ Methods=POST,DELETE Header[X-Team]=blue" in html.unescape(panel)
    assert 'data-rule="2"' in panel and 'data-state="per-request"' in path_of(panel, edge)

    # Hostile input: refused with the CLI's own messages (the regex compiled as Envoy's RE2), nothing written.
    for bad, says in ((("path-regex", "/a(b"), "path-regex '/a(b': invalid RE2 regular expression: missing )"),
                      (("path-prefix", "admin"), "path-prefix 'admin' must start with '/'"),
                      (("path-exact", "/x"), None)):
        form = {"action": "allow", "path_kind": bad[0], "path": bad[1]}
        if says is None:  # fine alone; with a method HTTP does not have, refused
            form["method"] = ["FETCH"]
            says = "method 'FETCH' is not one of GET, HEAD"
        assert says in refusal(l7_post(shop, "add", edge, form))
    assert "is not an HTTP header name" in refusal(l7_post(shop, "add", edge, {"action": "allow",
                                                                               "header": "X Team=1"}))
    assert "says nothing to match" in refusal(l7_post(shop, "add", edge, {"action": "allow"}))
    assert "'T L7' is not a valid service name" in refusal(l7_post(shop, "add", "t-api>T L7", rule))
    assert "already has the rule" in refusal(l7_post(shop, "add", edge, rule))
    assert len(permissions(shop, "t-l7", "t-api")) == 2

    # Removal names the rule's position and text: a stale page cannot remove another rule, nor the last one.
    assert "changed meanwhile" in refusal(l7_post(shop, "remove", edge, {"position": "1", "rule": "allow nothing"}))
    assert l7_post(shop, "remove", edge, {"position": "1", "rule": "allow PathPrefix=/public"}).status_code == 303
    last = "deny PathRegex=/admin/[a-z]+ Methods=POST,DELETE Header[X-Team]=blue"
    assert "last L7 rule" in refusal(l7_post(shop, "remove", edge, {"position": "1", "rule": last}))
    assert permissions(shop, "t-l7", "t-api")[0]["Action"] == "deny"  # type: ignore[index]

    # A plain allow becomes L7 only when the form says it replaces it (like `intent --replace`).
    allow = requests.post(f"{shop.consul_addr}/ui/intentions", timeout=10, allow_redirects=False, data={
        "source": "t-api", "destination": "t-l7", "action": "allow", "replace": "1", "back": "/ui/topology"})
    assert allow.status_code == 303 and permissions(shop, "t-l7", "t-api") == "allow"
    public = {"action": "allow", "path_kind": "path-prefix", "path": "/public"}
    assert "would replace it" in refusal(l7_post(shop, "add", edge, public))
    assert l7_post(shop, "add", edge, {**public, "replace": "1"}).status_code == 303
    assert permissions(shop, "t-l7", "t-api") == [{"Action": "allow", "HTTP": {"PathPrefix": "/public"}}]


def test_a_tcp_destination_refuses_l7_rules_with_the_reason(shop: RunningAgent) -> None:
    panel = topology(shop, "?edge=" + quote("t-web>t-ghost"))
    assert 'data-l7="refused"' in panel and "t-ghost speaks tcp" in panel and 'class="l7-add"' not in panel
    said = refusal(l7_post(shop, "add", "t-web>t-ghost", {"action": "allow", "path_kind": "path-prefix",
                                                          "path": "/x"}))
    assert said.startswith("t-ghost speaks tcp (no service-defaults protocol") and "nothing written" in said
    assert sources(shop, "t-ghost") == {"t-web": "allow"}


def test_service_page_shows_routing_and_a_running_release_from_the_config_entries(shop: RunningAgent) -> None:
    c = cclient(shop)
    release = {"nomadmesh-release": "r-42"}
    assert c.config.set("service-resolver", "t-l7", {
        "Kind": "service-resolver", "Name": "t-l7", "DefaultSubset": "stable", "Meta": release,
        "Subsets": {"stable": {"Filter": 'Service.Meta.nomadmesh_canary != "true"', "OnlyPassing": True},
                    "canary": {"Filter": 'Service.Meta.nomadmesh_canary == "true"', "OnlyPassing": True}}})
    assert c.config.set("service-splitter", "t-l7", {"Kind": "service-splitter", "Name": "t-l7", "Meta": release,
                                                     "Splits": [{"Weight": 75, "ServiceSubset": "stable"},
                                                                {"Weight": 25, "ServiceSubset": "canary"}]})
    assert c.config.set("service-router", "t-l7", {"Kind": "service-router", "Name": "t-l7", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/beta", "Methods": ["GET"]}},
         "Destination": {"ServiceSubset": "canary", "PrefixRewrite": "/"}}]})
    try:
        page = html.unescape(requests.get(f"{shop.consul_addr}/ui/services/t-l7", timeout=10).text)
        assert 'data-routing="entries"' in page
        assert re.search(r'data-route="1">.*?PathPrefix=/beta Methods=GET.*?t-l7 \(subset canary\), PrefixRewrite=/',
                         page, re.S)
        assert 'data-split="stable" data-weight="75.0"' in page and 'data-split="canary" data-weight="25.0"' in page
        assert re.search(r'data-subset="stable"><td><strong>stable</strong> <span class="badge">default', page)
        assert 'Service.Meta.nomadmesh_canary == "true"' in page
        # The release is the one whose Meta the entries carry; its weight is the splitter's.
        assert 'data-release="r-42"' in page and 'data-canary-weight="25.0"' in page
        assert "25% of requests to the canary, 75% to stable" in re.sub(r"<[^>]+>", "", page)
    finally:
        for kind in ("service-router", "service-splitter", "service-resolver"):
            c.config.delete(kind, "t-l7")
    plain = requests.get(f"{shop.consul_addr}/ui/services/t-l7", timeout=10).text
    assert 'data-routing="none"' in plain and "data-release" not in plain


def test_validations_page_lists_mesh_check_findings_linked_to_their_edges(shop: RunningAgent) -> None:
    c = cclient(shop)
    assert c.config.set("service-intentions", "t-api", {"Kind": "service-intentions", "Name": "t-api",
                                                        "Sources": [{"Name": "t-web", "Action": "deny"}]})
    try:
        page = html.unescape(requests.get(f"{shop.consul_addr}/ui/validations", timeout=10).text)
    finally:
        c.config.delete("service-intentions", "t-api")
    denied = re.search(r'<tr data-finding="upstream-denied" data-severity="error" data-edge="t-web>t-api">.*?</tr>',
                       page, re.S)
    assert denied and "t-web declares t-api as an upstream (t-web's sidecar registration)" in denied.group(0)
    assert 'href="/ui/topology?edge=t-web%3Et-api"' in denied.group(0)
    assert re.search(r'data-finding="per-request" data-severity="info" data-edge="t-api>t-l7"', page)
    # Served by the agent, the UI has no definitions: it says how plan's findings would show.
    assert 'data-plan="none"' in page and "nomadmesh ui --services" in page


def _project(root: Path, name: str, services: dict[str, str]) -> Path:
    """A project folder whose services are docker jobs (registered with --detach, nothing runs); its services dir."""
    (root / "nomadmesh.json").write_text(json.dumps({"name": name}))
    for service, release in services.items():
        folder = root / "services" / service
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "service.json").write_text(json.dumps({"service": {"name": service, "port": 8080}, "nomad": {
            "driver": "docker", "image": "nginx:1.27", "env": {"RELEASE": release}}}))
    return root / "services"


def test_validations_page_shows_plans_drift_orphans_and_new_jobs_for_the_folder_given(
        shop: RunningAgent, tmp_path: Path) -> None:
    services = _project(tmp_path, "vproj", {"v-drift": "1", "v-old": "1"})
    deployed = CliRunner().invoke(cli, ["deploy", "--services", str(services), "--detach", "--nomad-addr",
                                        shop.nomad_addr, "--consul-addr", shop.consul_addr])
    assert deployed.exit_code == 0, deployed.output
    job = requests.get(f"{shop.nomad_addr}/v1/job/v-drift", timeout=10).json()
    job["TaskGroups"][0]["Count"] = 2  # scaled by hand
    requests.post(f"{shop.nomad_addr}/v1/jobs", json={"Job": job}, timeout=10).raise_for_status()
    shutil.rmtree(services / "v-old")
    _project(tmp_path, "vproj", {"v-new": "1"})
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nomadmesh", "ui", "--port", str(port), "--services",
                             str(services), "--consul-addr", shop.consul_addr, "--nomad-addr", shop.nomad_addr],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = html.unescape(wait_until(lambda: _get(f"http://127.0.0.1:{port}/ui/validations"), 20,
                                        what="nomadmesh ui --services serves"))
    finally:
        proc.terminate()
        proc.wait(10)
        for name in ("v-drift", "v-old"):
            requests.delete(f"{shop.nomad_addr}/v1/job/{name}", params={"purge": "true"}, timeout=10)
    rows = dict(re.findall(r'<tr data-finding="([a-z-]+)" data-severity="\w+" data-node="([\w-]+)"', page))
    assert rows == {"drift": "v-drift", "orphan": "v-old", "job-new": "v-new"}, rows
    assert 'job v-drift: drift: changed outside nomadmesh: group "v-drift" Count: "2" => "1"' in page
    assert "job v-old: orphan (no definition renders it any more; `deploy --prune` stops it)" in page


def _get(url: str) -> str | None:
    try:
        return requests.get(url, timeout=30).text
    except requests.ConnectionError:
        return None


def test_tproxy_and_intention_only_edges_are_drawn_distinctly_and_in_the_legend(shop: RunningAgent) -> None:
    body = {"Name": "t-tp", "Port": free_port(), "Connect": {"SidecarService": {"Proxy": {"Mode": "transparent"}}}}
    requests.put(f"{shop.consul_addr}/v1/agent/service/register", json=body, timeout=5).raise_for_status()
    c = cclient(shop)
    assert c.config.set("service-intentions", "t-web", {"Kind": "service-intentions", "Name": "t-web", "Sources": [
        {"Name": "t-tp", "Action": "allow"}, {"Name": "t-api", "Action": "allow"}]})
    try:
        page = topology(shop)
    finally:
        c.config.delete("service-intentions", "t-web")
        requests.put(f"{shop.consul_addr}/v1/agent/service/deregister/t-tp", timeout=5).raise_for_status()
    tproxy, only = path_of(page, "t-tp>t-web"), path_of(page, "t-api>t-web")
    assert 'data-state="tproxy"' in tproxy and "edge-tproxy" in tproxy and "transparent proxy reaches it" in tproxy
    assert 'data-state="unused"' in only and "intention only" in only
    legend = page[page.index('class="legend"'):page.index("</ul>", page.index('class="legend"'))]
    assert "edge-tproxy" in legend and "transparent proxy: allowed" in legend and "intention only" in legend


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_top_refreshes_its_table_in_a_terminal(shop: RunningAgent) -> None:
    """`nomadmesh top` (not --once) under a pty: the table is drawn, then redrawn, and a figure that
    changed in between (a service's health) shows in a later frame. Bounded waits, no timing asserted."""
    import os
    import pty
    import select
    import signal

    register(shop, "t-top")
    ttl(shop, "t-top", "pass", "ok")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nomadmesh", "top", "--interval", "0.5", "--consul-addr",
                             shop.consul_addr, "--nomad-addr", shop.nomad_addr], cwd=REPO, stdin=slave,
                            stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm", "COLUMNS": "160"})
    os.close(slave)
    screen = bytearray()

    def shown() -> str:
        while select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen.extend(chunk)
        return ANSI.sub("", screen.decode("utf-8", "replace"))

    try:
        first = wait_until(lambda: (t := shown()).count("t-top") and "all passing (1/1)" in t and t, 30,
                           what="top draws t-top passing")
        frames = first.count("Services")
        ttl(shop, "t-top", "fail", "down")
        later = wait_until(lambda: (t := shown()).count("Services") >= frames + 2 and "none passing (0/1)" in t
                           and t, 30, what="two more frames, one with t-top failing")
        def row(frame: str) -> str:
            return next(line for line in frame.splitlines() if "t-top" in line)

        assert "all passing (1/1)" in row(first.split("Services")[1])  # the first frame's service table
        assert "none passing (0/1)" in row(later.rsplit("Services", 1)[1])  # the last refresh's
    finally:
        proc.send_signal(signal.SIGINT)  # how a person stops it: Ctrl-C
        try:
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            os.close(master)
        requests.put(f"{shop.consul_addr}/v1/agent/service/deregister/t-top", timeout=5)
    assert proc.returncode == 0  # Ctrl-C ends it cleanly, no traceback


def test_edge_panel_deny_replaces_an_l7_intention_as_it_says(shop: RunningAgent) -> None:
    """The panel says Allow/Deny replace the exact pair's L7 rules: its forms carry replace=1 for that
    (they were refused with "would replace it" before)."""
    from nomadmesh.deploy import intentions as writer
    from nomadmesh.mesh.intentions import permissions_from_json

    c = cclient(shop)
    assert c.config.set("service-defaults", "t-api", {"Kind": "service-defaults", "Name": "t-api", "Protocol": "http"})
    writer.set_intention(c, "t-web", "t-api", None, "l7 first",
                         permissions_from_json([{"Action": "allow", "HTTP": {"PathExact": "/only"}}]))
    try:
        panel = topology(shop, "?edge=" + quote("t-web>t-api"))
        deny_form = re.search(r'<form method="post" action="/ui/intentions">(?:(?!</form>).)*?value="deny".*?</form>',
                              panel, re.S)
        assert deny_form and '<input type="hidden" name="replace" value="1">' in deny_form.group(0)
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', deny_form.group(0)))
        done = requests.post(f"{shop.consul_addr}/ui/intentions", data=fields, timeout=10, allow_redirects=False)
        assert done.status_code == 303, refusal(done)
        assert permissions(shop, "t-api", "t-web") == "deny"
    finally:
        writer.delete_intention(c, "t-web", "t-api")
        c.config.delete("service-defaults", "t-api")

"""The UI over plain HTTP against a real dev agent: pages, intention forms, errors, SSE, `nomadmesh ui`.

Services are registered through the Consul API (a sidecar with upstreams, TTL checks whose output
we set) and one Nomad job without Connect; intentions are checked through py-consul.
"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import nomad
import requests

from support.agents import RunningAgent
from support.consul_api import cclient, register, sources, ttl
from support.net import free_port
from support.paths import REPO
from support.waiting import wait_until


def ui(agent: RunningAgent, path: str, **kw: Any) -> requests.Response:
    return requests.get(f"{agent.consul_addr}/ui/{path}", timeout=10, **kw)


def post(agent: RunningAgent, path: str, data: dict[str, str], **kw: Any) -> requests.Response:
    return requests.post(f"{agent.consul_addr}/ui/{path}", data=data, timeout=10, allow_redirects=False, **kw)


def test_services_page_shows_instances_health_output_tags_and_sidecars(module_agent: RunningAgent) -> None:
    register(module_agent, "h-web", upstreams=("h-api",), tags=("frontend",))
    register(module_agent, "h-api")
    ttl(module_agent, "h-web", "warn", "queue is 80% full")
    page = ui(module_agent, "services")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    start = html.index('data-service="h-web"')
    web_row = html[start:html.index("</tr>", start)]
    assert "health-warning" in web_row and "queue is 80% full" in web_row
    assert '<span class="tag">frontend</span>' in web_row
    assert 'data-sidecar="h-web-sidecar-proxy"' in web_row and "upstreams:" in web_row and "h-api</a>:7000" in web_row
    assert "h-web-sidecar-proxy" not in html.replace('data-sidecar="h-web-sidecar-proxy"', "").split(
        'data-service="h-web"')[0]  # the proxy sits beside its service, not as a row of its own
    # The live fragment is the same content without the page around it.
    frag = ui(module_agent, "services", params={"fragment": "1"}).text
    assert 'data-service="h-web"' in frag and "<html" not in frag


def test_service_page_shows_edges_with_deciding_intention_and_no_stats(module_agent: RunningAgent) -> None:
    register(module_agent, "e-web", upstreams=("e-api",))
    register(module_agent, "e-api")
    cclient(module_agent).config.set("service-intentions", "e-api", {
        "Kind": "service-intentions", "Name": "e-api", "Sources": [{"Name": "e-web", "Action": "deny"}]})
    html = ui(module_agent, "services/e-api").text
    start = html.index('data-kind="downstreams"')
    downs = html[start:html.index("</table>", start)]
    assert 'data-edge="e-web>e-api" data-verdict="denied"' in downs and "e-web → e-api</code> (deny)" in downs
    assert 'data-stats="unavailable"' in html
    web = ui(module_agent, "services/e-web").text
    assert 'data-edge="e-web>e-api" data-verdict="denied"' in web
    missing = ui(module_agent, "services/e-nothing")
    assert missing.status_code == 404 and "No service named <strong>e-nothing</strong>" in missing.text


def test_intention_create_flip_delete_through_the_forms(module_agent: RunningAgent) -> None:
    made = post(module_agent, "intentions", {"source": "f-web", "destination": "f-db", "action": "deny",
                                              "description": "web must not <b>touch</b> db"})
    assert made.status_code == 303 and "/ui/intentions?notice=" in made.headers["Location"]
    entry = cclient(module_agent).config.get("service-intentions", "f-db")
    assert entry["Sources"][0]["Action"] == "deny"
    assert entry["Sources"][0]["Description"] == "web must not <b>touch</b> db"
    listed = ui(module_agent, "intentions").text
    assert 'data-intention="f-web>f-db" data-action="deny"' in listed
    assert "web must not &lt;b&gt;touch&lt;/b&gt; db" in listed  # escaped, never markup

    assert post(module_agent, "intentions/flip", {"source": "f-web", "destination": "f-db"}).status_code == 303
    assert sources(module_agent, "f-db") == {"f-web": "allow"}
    entry = cclient(module_agent).config.get("service-intentions", "f-db")
    assert entry["Sources"][0]["Description"] == "web must not <b>touch</b> db"  # flip keeps it

    assert post(module_agent, "intentions/delete", {"source": "f-web", "destination": "f-db"}).status_code == 303
    assert sources(module_agent, "f-db") is None


def test_wildcard_intentions_keep_other_writers_sources(module_agent: RunningAgent) -> None:
    # Another tool (the CLI, Terraform) owns a source of the same entry: the UI's write keeps it.
    cclient(module_agent).config.set("service-intentions", "w-db", {
        "Kind": "service-intentions", "Name": "w-db", "Meta": {"owner": "terraform"},
        "Sources": [{"Name": "w-batch", "Action": "allow"}]})
    assert post(module_agent, "intentions", {"source": "*", "destination": "w-db", "action": "deny"}).status_code == 303
    entry = cclient(module_agent).config.get("service-intentions", "w-db")
    assert {s["Name"]: s["Action"] for s in entry["Sources"]} == {"w-batch": "allow", "*": "deny"}
    assert entry["Meta"] == {"owner": "terraform"}
    html = ui(module_agent, "intentions").text
    assert html.index('data-intention="w-batch>w-db"') < html.index('data-intention="*>w-db"')  # 9 before 8


def test_ui_and_cli_writes_at_the_same_time_lose_nothing(module_agent: RunningAgent) -> None:
    from nomadmesh.deploy.intentions import set_intention

    errors: list[BaseException] = []

    def ui_writer(i: int) -> None:
        r = post(module_agent, "intentions", {"source": f"c-ui{i}", "destination": "c-db", "action": "deny"})
        if r.status_code != 303:
            errors.append(AssertionError(r.text))

    def cli_writer(i: int) -> None:
        try:
            set_intention(cclient(module_agent), f"c-cli{i}", "c-db", "allow")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=f, args=(i,)) for i in range(6) for f in (ui_writer, cli_writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sources(module_agent, "c-db") == {**{f"c-ui{i}": "deny" for i in range(6)},
                                             **{f"c-cli{i}": "allow" for i in range(6)}}


def test_form_errors_are_shown_in_the_page_and_nothing_is_written(module_agent: RunningAgent) -> None:
    bad = post(module_agent, "intentions", {"source": "", "destination": "x-db", "action": "deny"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text and "source: required" in bad.text
    bad = post(module_agent, "intentions", {"source": "x-web", "destination": "x-db", "action": "maybe"})
    assert bad.status_code == 400 and "action: must be allow or deny" in bad.text
    assert 'value="x-web"' in bad.text  # what was typed is kept
    flip = post(module_agent, "intentions/flip", {"source": "x-web", "destination": "x-db"})
    assert flip.status_code == 400 and "x-web → x-db: no such intention" in flip.text
    # Consul's own refusal (an L7 intention on a tcp service) comes back as the page's error.
    cclient(module_agent).config.set("service-intentions", "x-db", {
        "Kind": "service-intentions", "Name": "x-db",
        "Sources": [{"Name": "x-ok", "Action": "allow"}]})
    assert sources(module_agent, "x-db") == {"x-ok": "allow"}
    crossed = post(module_agent, "intentions", {"source": "x-evil", "destination": "x-db", "action": "allow"},
                   headers={"Origin": "http://attacker.example"})
    assert crossed.status_code == 403
    assert sources(module_agent, "x-db") == {"x-ok": "allow"}


def test_unreachable_consul_is_an_error_in_the_page(tmp_path: Any) -> None:
    from nomadmesh.deploy.target import target_from_env
    from nomadmesh.ui import create_ui_app
    from nomadmesh.webguard import own_address

    dead = free_port()
    app = create_ui_app(target_from_env({}, nomad_addr=f"http://127.0.0.1:{dead}", consul_addr=f"http://127.0.0.1:{dead}"),
                        own_address("127.0.0.1", 80))  # the test client's Host: localhost

    async def run() -> tuple[Any, str, Any, str]:
        client = app.test_client()
        page = await client.get("/ui/services")
        made = await client.post("/ui/intentions", form={"source": "a", "destination": "b", "action": "deny"})
        return page, await page.get_data(as_text=True), made, await made.get_data(as_text=True)

    page, page_text, made, made_text = asyncio.run(run())
    assert page.status_code == 200
    assert "Cannot read the cluster" in page_text and f"127.0.0.1:{dead}" in page_text
    assert made.status_code == 400 and "cannot reach Consul" in made_text


def read_events(lines: Iterator[str], until: Callable[[str], bool], timeout: float) -> list[str]:
    events: list[str] = []
    deadline = time.monotonic() + timeout
    for line in lines:
        if line and line.startswith("event: "):
            events.append(line[7:])
            if until(line[7:]):
                break
        if time.monotonic() > deadline:
            break
    return events


def test_sse_pushes_changed_on_each_kind_of_change(module_agent: RunningAgent) -> None:
    with requests.get(f"{module_agent.consul_addr}/ui/events", stream=True, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        lines = resp.iter_lines(chunk_size=None, decode_unicode=True)  # one iterator: each event as it comes
        assert read_events(lines, lambda e: e == "ready", 5)[-1] == "ready"
        for change in (lambda: register(module_agent, "s-new"),  # catalog
                       lambda: ttl(module_agent, "s-new", "pass", "up"),  # health (a TTL check starts critical)
                       lambda: cclient(module_agent).config.set("service-intentions", "s-new", {  # intentions
                           "Kind": "service-intentions", "Name": "s-new",
                           "Sources": [{"Name": "a", "Action": "deny"}]})):
            change()
            assert read_events(lines, lambda e: e == "changed", 5)[-1] == "changed"


# The task's `python -c` code: a marker line in its log, then the sample app run as `app tax`.
LAUNCH_APP = ("import runpy, sys; print('ui-log-marker', flush=True); sys.argv = ['app', 'tax']; "
              "runpy.run_path('{app}', run_name='__main__')")
JOB = """
job "n-tax" {
  group "n-tax" {
    network {
      port "http" {}
    }
    service {
      name = "n-tax"
      port = "http"
      check {
        type     = "http"
        path     = "/health"
        interval = "1s"
        timeout  = "1s"
      }
    }
    task "app" {
      driver = "raw_exec"
      config {
        command = "%(python)s"
        args    = ["-c", "%(launch)s"]
      }
      env {
        PORT = "${NOMAD_PORT_http}"
      }
      kill_timeout = "2s"
    }
  }
}
"""


def test_nomad_job_and_alloc_and_log_tail(module_agent: RunningAgent) -> None:
    n = nomad.Nomad(host="127.0.0.1", port=module_agent.nomad_port, timeout=10)
    job = n.jobs.parse(JOB % {"python": sys.executable, "launch": LAUNCH_APP.format(app=REPO / "services" / "app.py")},
                       canonicalize=True)
    n.jobs.register_job({"Job": job})
    try:
        wait_until(lambda: cclient(module_agent).health.service("n-tax", passing=True)[1], 30, "n-tax passing")
        (alloc,) = [a for a in n.job.get_allocations("n-tax") if a["ClientStatus"] == "running"]
        html = ui(module_agent, "services").text
        row = html[html.index('data-service="n-tax"'):]
        row = row[:row.index("</tr>")]
        assert "job <strong>n-tax</strong>" in row and alloc["ID"][:8] in row and "(running)" in row
        page = wait_until(lambda: (t := ui(module_agent, "services/n-tax").text) and "ui-log-marker" in t and t,
                        10, "log tail on the service page")
        assert alloc["ID"] in page and "app <small>stdout" in page
    finally:
        n.job.deregister_job("n-tax", purge=True)


def test_nomadmesh_ui_command_serves_the_same_ui(module_agent: RunningAgent) -> None:
    register(module_agent, "u-cli")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nomadmesh", "ui", "--consul-addr", module_agent.consul_addr,
                             "--nomad-addr", module_agent.nomad_addr, "--port", str(port)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        page = wait_until(lambda: _get(f"http://127.0.0.1:{port}/ui/services"), 15, "nomadmesh ui answers")
        assert 'data-service="u-cli"' in page.text and module_agent.consul_addr in page.text
        assert _get(f"http://127.0.0.1:{port}/ui/static/ui.js").text.startswith("// Live updates")
        # The same port again: a one-line error naming the flag, no traceback.
        busy = subprocess.run([sys.executable, "-m", "nomadmesh", "ui", "--port", str(port)], cwd=REPO,
                              capture_output=True, text=True, timeout=30)
        assert busy.returncode == 1 and "--port" in busy.stderr and "already in use" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    assert f"http://127.0.0.1:{port}/ui/" in proc.stderr.read()


def _get(url: str) -> requests.Response | None:
    try:
        r = requests.get(url, timeout=2)
        return r if r.status_code == 200 else None
    except requests.RequestException:
        return None


def test_feed_restarts_watchers_that_ended_after_the_last_subscriber_left(module_agent: RunningAgent) -> None:
    from nomadmesh.ui.api import apis_for
    from nomadmesh.ui.app import local_target
    from nomadmesh.ui.events import ChangeFeed

    target = local_target("127.0.0.1", module_agent.nomad_port, module_agent.consul_port)
    feed = ChangeFeed(lambda: apis_for(target), wait_s=5)
    feed.subscribe()
    wait_until(feed.primed, 5, "first priming")
    feed.unsubscribe()
    register(module_agent, "r-one")  # wakes the catalog and health watchers, which now end; the others block on
    time.sleep(0.5)  # let the woken watchers finish (nothing to poll for: they end silently)
    feed.subscribe()
    try:
        wait_until(feed.primed, 2, "primed again")
        seen = feed.version
        cclient(module_agent).config.set("service-intentions", "r-one", {
            "Kind": "service-intentions", "Name": "r-one", "Sources": [{"Name": "a", "Action": "deny"}]})
        register(module_agent, "r-two")
        assert feed.wait(seen, 2) != seen
    finally:
        feed.unsubscribe()


def test_every_ui_answer_carries_frame_content_and_sniffing_headers(module_agent: RunningAgent) -> None:
    register(module_agent, "hd-web")
    answers = [ui(module_agent, p) for p in ("services", "services?fragment=1", "services/hd-web", "services/hd-none",
                                             "intentions", "topology", "static/ui.js", "static/ui.css")]
    answers.append(post(module_agent, "intentions", {"source": "", "destination": "hd-db", "action": "deny"}))
    for resp in answers:
        where = f"{resp.request.method} {resp.url} ({resp.status_code})"
        assert resp.headers.get("X-Frame-Options") == "DENY", where
        assert resp.headers.get("X-Content-Type-Options") == "nosniff", where
        assert resp.headers.get("Referrer-Policy") == "same-origin", where
        csp = dict(d.strip().split(" ", 1) for d in resp.headers["Content-Security-Policy"].split(";"))
        assert csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'none'", where
        assert csp["script-src"] == "'self'" and "unsafe" not in resp.headers["Content-Security-Policy"], where

"""Cross-site and DNS-rebinding requests against a real dev agent (both APIs and the UI) and `nomadmesh ui`.

A browser on an attacker's page can send a `text/plain` POST anywhere without a CORS preflight, and
a rebinding page reaches 127.0.0.1 under its own name. Each refusal here is a 403 with a one-line
reason and nothing written; clients that send no Origin (curl, python-nomad, py-consul) still work,
and so does the UI's own same-origin form post.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import nomad
import pytest
import requests

from nomadmesh.webguard import decide, own_address
from support.agents import RunningAgent
from support.net import free_port
from support.paths import REPO
from support.waiting import wait_until

EVIL = "http://attacker.example"
CROSS_SITE = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}

JOB_HCL = """
job "xsite" {
  datacenters = ["dc1"]
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}
"""


def assert_refused(resp: requests.Response, *words: str) -> None:
    assert resp.status_code == 403, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text.count("\n") == 1 and all(w in resp.text for w in words), resp.text


def job_json(agent: RunningAgent) -> dict[str, Any]:
    parsed = requests.post(f"{agent.nomad_addr}/v1/jobs/parse", json={"JobHCL": JOB_HCL}, timeout=10)
    parsed.raise_for_status()
    return {"Job": parsed.json()}


def test_cross_site_text_plain_post_cannot_register_a_job(module_agent: RunningAgent) -> None:
    body = json.dumps(job_json(module_agent))
    resp = requests.post(f"{module_agent.nomad_addr}/v1/jobs", data=body, headers=CROSS_SITE, timeout=10)
    assert_refused(resp, "cross-origin", EVIL)
    # Origin alone (older browsers send no Sec-Fetch-Site) is enough to refuse.
    resp = requests.post(f"{module_agent.nomad_addr}/v1/jobs", data=body,
                         headers={"Origin": EVIL, "Content-Type": "text/plain"}, timeout=10)
    assert_refused(resp, "cross-origin")
    resp = requests.post(f"{module_agent.nomad_addr}/v1/jobs", data=body,
                         headers={"Sec-Fetch-Site": "same-site", "Content-Type": "text/plain"}, timeout=10)
    assert_refused(resp, "Sec-Fetch-Site")
    assert requests.get(f"{module_agent.nomad_addr}/v1/job/xsite", timeout=10).status_code == 404


def test_cross_site_legacy_intention_post_is_refused(module_agent: RunningAgent) -> None:
    url = f"{module_agent.consul_addr}/v1/connect/intentions"
    body = json.dumps({"SourceName": "xs-evil", "DestinationName": "xs-db", "Action": "allow"})
    assert_refused(requests.post(url, data=body, headers=CROSS_SITE, timeout=10), "cross-origin")
    assert_refused(requests.put(f"{module_agent.consul_addr}/v1/kv/xs-secret", data=b"x", headers=CROSS_SITE,
                                timeout=10), "cross-origin")
    listed = requests.get(url, timeout=10).json() or []
    assert not [i for i in listed if i["DestinationName"] == "xs-db"]
    assert requests.get(f"{module_agent.consul_addr}/v1/kv/xs-secret", timeout=10).status_code == 404


def test_origin_null_is_refused_on_the_ui_and_the_apis(module_agent: RunningAgent) -> None:
    form = {"source": "xn-evil", "destination": "xn-db", "action": "allow"}
    null = {"Origin": "null"}
    assert_refused(requests.post(f"{module_agent.consul_addr}/ui/intentions", data=form, headers=null,
                                 allow_redirects=False, timeout=10), "'null'")
    assert_refused(requests.put(f"{module_agent.consul_addr}/v1/kv/xn-key", data=b"x", headers=null, timeout=10))
    assert requests.get(f"{module_agent.consul_addr}/v1/config/service-intentions/xn-db", timeout=10).status_code == 404
    assert requests.get(f"{module_agent.consul_addr}/v1/kv/xn-key", timeout=10).status_code == 404


def test_rebinding_host_is_refused_even_for_reads(module_agent: RunningAgent) -> None:
    requests.put(f"{module_agent.consul_addr}/v1/kv/xr-secret", data=b"hunter2", timeout=10).raise_for_status()
    rebound = {"Host": f"attacker.example:{module_agent.consul_port}"}
    # A rebinding page reads with its own name as Host: no Origin on a same-origin GET.
    assert_refused(requests.get(f"{module_agent.consul_addr}/v1/kv/xr-secret?raw", headers=rebound, timeout=10),
                   "attacker.example", "not this agent's address")
    assert_refused(requests.get(f"{module_agent.nomad_addr}/v1/jobs",
                                headers={"Host": f"attacker.example:{module_agent.nomad_port}"}, timeout=10))
    # The UI form post a rebound page makes is same-origin as far as the browser knows.
    form = {"source": "xr-evil", "destination": "xr-db", "action": "allow"}
    resp = requests.post(f"{module_agent.consul_addr}/ui/intentions", data=form, allow_redirects=False, timeout=10,
                         headers={**rebound, "Origin": f"http://attacker.example:{module_agent.consul_port}",
                                  "Sec-Fetch-Site": "same-origin"})
    assert_refused(resp, "attacker.example")
    assert requests.get(f"{module_agent.consul_addr}/v1/config/service-intentions/xr-db", timeout=10).status_code == 404
    # The right name on another port is someone else too (a different server on this host).
    assert_refused(requests.get(f"{module_agent.consul_addr}/v1/kv/xr-secret",
                                headers={"Host": f"127.0.0.1:{module_agent.nomad_port}"}, timeout=10))


def test_curl_like_clients_and_same_origin_browsers_still_work(module_agent: RunningAgent) -> None:
    # python-nomad, py-consul-style requests: no Origin, no Sec-Fetch-Site.
    client = nomad.Nomad(host="127.0.0.1", port=module_agent.nomad_port, timeout=10)
    client.jobs.register_job(job_json(module_agent))
    assert client.job.get_job("xsite")["ID"] == "xsite"
    client.job.deregister_job("xsite", purge=True)
    assert requests.put(f"{module_agent.consul_addr}/v1/kv/xc-key", data=b"v", timeout=10).json() is True
    for host in ("localhost", "127.0.0.1", "[::1]"):
        got = requests.get(f"{module_agent.consul_addr}/v1/kv/xc-key?raw",
                           headers={"Host": f"{host}:{module_agent.consul_port}"}, timeout=10)
        assert got.status_code == 200 and got.content == b"v", host
    # The UI's own form, as the browser sends it from the UI's page.
    own = f"http://127.0.0.1:{module_agent.consul_port}"
    resp = requests.post(f"{own}/ui/intentions", data={"source": "xc-web", "destination": "xc-db", "action": "deny"},
                         headers={"Origin": own, "Sec-Fetch-Site": "same-origin"}, allow_redirects=False, timeout=10)
    assert resp.status_code == 303, resp.text
    entry = requests.get(f"{own}/v1/config/service-intentions/xc-db", timeout=10).json()
    assert [s["Name"] for s in entry["Sources"]] == ["xc-web"]
    requests.delete(f"{own}/v1/config/service-intentions/xc-db", timeout=10).raise_for_status()
    # A cross-site GET (a link, an <img>) is harmless and allowed: the browser keeps the answer from the page.
    assert requests.get(f"{own}/v1/status/leader", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
                        timeout=10).status_code == 200


@pytest.fixture
def standalone_ui(module_agent: RunningAgent) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nomadmesh", "ui", "--consul-addr", module_agent.consul_addr,
                             "--nomad-addr", module_agent.nomad_addr, "--port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/ui/services", timeout=2).status_code == 200, 20, what="nomadmesh ui")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_standalone_ui_refuses_null_origin_and_rebinding(standalone_ui: str, module_agent: RunningAgent) -> None:
    form = {"source": "xu-evil", "destination": "xu-db", "action": "allow"}
    post = lambda **h: requests.post(f"{standalone_ui}/ui/intentions", data=form, headers=h,  # noqa: E731
                                     allow_redirects=False, timeout=10)
    assert_refused(post(Origin="null"), "'null'")
    port = standalone_ui.rsplit(":", 1)[1]
    assert_refused(post(Host=f"rebind.example:{port}", Origin=f"http://rebind.example:{port}"), "rebind.example")
    assert_refused(requests.get(f"{standalone_ui}/ui/services", headers={"Host": f"rebind.example:{port}"},
                                timeout=10), "rebind.example")
    assert requests.get(f"{module_agent.consul_addr}/v1/config/service-intentions/xu-db", timeout=10).status_code == 404
    assert post(Origin=standalone_ui, **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    requests.delete(f"{module_agent.consul_addr}/v1/config/service-intentions/xu-db", timeout=10).raise_for_status()


# --- the decision itself, for the bind addresses the tests above do not start -------------------

def test_wildcard_bind_accepts_any_ip_literal_and_the_machine_name_but_no_other_name() -> None:
    own = own_address("0.0.0.0", 4646, hostname="box")
    for host in ("10.1.2.3:4646", "[fe80::1]:4646", "localhost:4646", "box:4646", "BOX.:4646"):
        assert decide("GET", host, None, None, own) is None, host
    for host in ("evil.example:4646", "10.1.2.3:4647", "10.1.2.3", "user@10.1.2.3:4646", "::"):
        assert decide("GET", host, None, None, own) is not None, host


def test_specific_bind_accepts_only_itself_and_the_machine_name() -> None:
    own = own_address("10.0.0.5", 8500, hostname="box")
    assert decide("PUT", "10.0.0.5:8500", "http://10.0.0.5:8500", "same-origin", own) is None
    assert decide("PUT", "box:8500", None, None, own) is None
    assert decide("GET", "127.0.0.1:8500", None, None, own) is not None
    assert decide("GET", "10.0.0.6:8500", None, None, own) is not None
    assert decide("PUT", "10.0.0.5:8500", "http://box:8500", None, own) is not None  # same site, other origin
    assert decide("DELETE", None, None, None, own) is None  # HTTP/1.0 without Host: not a browser
    assert decide("DELETE", None, "http://10.0.0.5:8500", None, own) is not None

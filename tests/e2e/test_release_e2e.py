"""`nomadmesh release` end to end: the sample shop on a real agent with real Envoy sidecars, a steady
client calling order (→ invoice → tax) through the ingress gateway the whole time.

invoice is declared http with one canary and auto_revert (a copy of services/ in a temp dir). A
release of invoice 2.0 shifts 50% then 100% and is promoted with no failed request; a 3.0 answering
half its requests 500 is rolled back automatically (exit 1, the error rate named) and the traffic is
back on 2.0; an `abort` and a `promote` by hand end a running release (rolled back, exit 1; promoted,
exit 0). Intervals are 1 s. A last release reads its figures from a real Prometheus (Debian's),
finding the invoice sidecars as Consul service discovery would and relabelling them with the
README's scrape config (`--metrics-url`).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_cli_deploy import agent, run  # noqa: F401  (module fixture)

from support import consul_sd
from support.agents import RunningAgent
from support.net import free_port
from support.paths import REPO, SERVICES
from support.sample_mesh import host_port
from support.steady_client import SteadyClient
from support.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.envoy]

PROMETHEUS = shutil.which("prometheus")
METRICS_BIND = "0.0.0.0:9102"  # inside each allocation's namespace: reachable at the allocation's IP
RELEASE_ARGS = ("--steps", "50,100", "--interval", "1s", "--min-requests", "5", "--max-error-rate", "5%")


def set_invoice(services: Path, canary: int = 1, **env: str) -> None:
    path = services / "invoice" / "service.json"
    d = json.loads(path.read_text())
    d["service"]["connect"]["sidecar_service"]["proxy"]["config"] = {"protocol": "http",
                                                                     "envoy_prometheus_bind_addr": METRICS_BIND}
    d["nomad"]["update"] = {"min_healthy_time": "500ms", "healthy_deadline": "30s", "progress_deadline": "1m",
                            "canary": canary, "auto_revert": True}
    d["nomad"]["env"] = env
    # The metrics listener on a host port, named in the meta the sidecar inherits (README, --metrics-url).
    d["nomad"]["ports"] = {"envoy_metrics": int(METRICS_BIND.rsplit(":", 1)[1])}
    d["service"]["meta"] = {"envoy_metrics_port": "${NOMAD_HOST_PORT_envoy_metrics}"}
    # Deregistered, then 1 s for every caller's Envoy to drop it, then stopped: no request lands on a
    # stopping old instance after the promotion (Nomad's advice for zero-downtime updates).
    d["nomad"]["group"] = {"shutdown_delay": "1s"}
    path.write_text(json.dumps(d, indent=2))


@pytest.fixture(scope="module")
def shop(agent: RunningAgent, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # noqa: F811
    services = tmp_path_factory.mktemp("release") / "services"
    shutil.copytree(SERVICES, services)
    set_invoice(services, VERSION="1.0")
    deployed = run(agent, "deploy", "--services", str(services))
    assert deployed.exit_code == 0, deployed.output
    import nomad

    client = nomad.Nomad(host="127.0.0.1", port=int(agent.nomad_addr.rsplit(":", 1)[1]), timeout=10)
    port = host_port(client, "ingress", "listener_8080")[0]
    url = f"http://127.0.0.1:{port}/"
    assert wait_until(lambda: requests.get(url, timeout=5).status_code == 200, 30, what="order answers")
    with SteadyClient(url) as steady:
        yield {"services": services, "steady": steady, "agent": agent}


def entries(target: RunningAgent) -> dict[str, Any]:
    out = {}
    for kind in ("service-splitter", "service-resolver"):
        r = requests.get(f"{target.consul_addr}/v1/config/{kind}/invoice", timeout=5)
        out[kind] = r.json() if r.status_code == 200 else None
    return out


def release(shop: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    result = run(shop["agent"], "release", "invoice", "--services", str(shop["services"]), *RELEASE_ARGS, "--json")
    return result.exit_code, json.loads(result.stdout)


def _answered_by_only(steady: SteadyClient, version: str, gone: str) -> None:
    """From now on every request answers, and `version` answers them, `gone` none."""
    steady.reset()
    assert wait_until(lambda: steady.versions[version] > 20, 20, what=f"only {version} answering")
    with steady.lock:
        assert steady.versions[gone] == 0 and steady.failures == [], steady.failures[:5]


def _a_healthy_release_is_promoted(shop: dict[str, Any]) -> list[str]:
    """Promoted; returns the steady client's requests that failed during the release."""
    steady: SteadyClient = shop["steady"]
    set_invoice(shop["services"], VERSION="2.0")
    assert wait_until(lambda: steady.versions["1.0"] > 20, 20, what="steady traffic on 1.0")
    steady.reset()
    code, report = release(shop)
    assert (code, report["outcome"]) == (0, "promoted"), report
    assert [s["percent"] for s in report["steps"] if s["verdict"] != "wait"] == [50, 100]
    assert all(s["canary"]["errors_5xx"] == 0 for s in report["steps"])
    assert entries(shop["agent"]) == {"service-splitter": None, "service-resolver": None}
    with steady.lock:
        assert steady.versions["1.0"] > 0 and steady.versions["2.0"] > 0  # both served during the release
        failed_during = list(steady.failures)
    _answered_by_only(steady, "2.0", gone="1.0")
    return failed_during


def _a_failing_release_is_rolled_back_and_traffic_is_back_on_stable(shop: dict[str, Any]) -> None:
    steady: SteadyClient = shop["steady"]
    set_invoice(shop["services"], VERSION="3.0", FAIL_RATE="0.5")
    code, report = release(shop)
    assert (code, report["outcome"]) == (1, "rolled back"), report
    assert report["steps"][-1]["percent"] == 50 and report["steps"][-1]["verdict"] == "rollback"
    assert any(t.startswith("error rate ") for t in report["tripped"]), report
    assert entries(shop["agent"]) == {"service-splitter": None, "service-resolver": None}
    _answered_by_only(steady, "2.0", gone="3.0")


def _abort_sends_traffic_back_to_stable_and_the_running_release_stops(shop: dict[str, Any]) -> None:
    code, report = _release_ended_by_hand(shop, "4.0", "abort", "aborted: traffic on stable")
    assert (code, report["outcome"]) == (1, "rolled back"), report
    assert "no longer release 'invoice v" in report["reason"]
    _answered_by_only(shop["steady"], "2.0", gone="4.0")


def _release_ended_by_hand(shop: dict[str, Any], version: str, command: str, says: str) -> tuple[int, dict[str, Any]]:
    """A release of `version` waiting at 5%, ended by `nomadmesh <command> invoice` (exit 0, saying `says`):
    the release's exit code and report, once its entries are gone."""
    agent_: RunningAgent = shop["agent"]
    set_invoice(shop["services"], VERSION=version)
    proc = _waiting_release(shop)
    try:
        ended = run(agent_, command, "invoice")
        assert ended.exit_code == 0 and says in ended.stdout, ended.output
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert out, err
    assert entries(agent_) == {"service-splitter": None, "service-resolver": None}
    return proc.returncode, json.loads(out)


def _waiting_release(shop: dict[str, Any]) -> subprocess.Popen[str]:
    """A release that would wait at 5% (it wants more canary requests than it gets), in another process;
    returned once its split is at 5%."""
    agent_: RunningAgent = shop["agent"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nomadmesh", "release", "invoice", "--services", str(shop["services"]),
         "--steps", "5,100", "--interval", "1s", "--min-requests", "100000", "--json",
         "--nomad-addr", agent_.nomad_addr, "--consul-addr", agent_.consul_addr],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: ((entries(agent_)["service-splitter"] or {}).get("Splits") or [{}])[-1].get(
            "Weight") == 5, 60, what="the release at 5%")
        meta = entries(agent_)["service-splitter"]["Meta"]  # its progress, published for the web UI
        assert (meta["nomadmesh-release-steps"], meta["nomadmesh-release-step"]) == ("5,100", "1"), meta
    except BaseException:
        proc.kill()
        raise
    return proc


def _a_release_promoted_by_hand_ends_promoted(shop: dict[str, Any]) -> None:
    code, report = _release_ended_by_hand(shop, "5.1", "promote", "invoice: promoted.")
    assert (code, report["outcome"]) == (0, "promoted"), report
    assert report["reason"].startswith("promoted by someone else (`nomadmesh promote invoice`"), report
    _answered_by_only(shop["steady"], "5.1", gone="2.0")


def _what_a_release_refuses_changes_nothing(shop: dict[str, Any]) -> None:
    agent_: RunningAgent = shop["agent"]
    services = str(shop["services"])
    tcp = run(agent_, "release", "tax", "--services", services)
    assert tcp.exit_code == 2
    assert ('release: tax speaks tcp: splitting traffic needs an L7 protocol; declare "protocol": "http" in '
            "services/tax/service.json") in tcp.stderr
    set_invoice(shop["services"], VERSION="2.0")  # what runs since the rollbacks (auto_revert)
    same = run(agent_, "release", "invoice", "--services", services)
    assert same.exit_code == 1 and "nothing to release: invoice's definition is what runs" in same.stderr
    set_invoice(shop["services"], canary=0, VERSION="5.0")
    plain = run(agent_, "release", "invoice", "--services", services)
    assert plain.exit_code == 2
    assert 'release: invoice places no canaries: declare "update": {"canary": 1} under "nomad"' in plain.stderr
    bad = run(agent_, "release", "invoice", "--services", services, "--interval", "soon")
    assert bad.exit_code == 2 and 'release: --interval: time: invalid duration "soon"' in bad.stderr
    assert entries(agent_) == {"service-splitter": None, "service-resolver": None}
    job = requests.get(f"{agent_.nomad_addr}/v1/job/invoice", timeout=5).json()
    assert job["TaskGroups"][0]["Tasks"][0]["Env"]["VERSION"] == "2.0"  # nothing was registered


@pytest.mark.timeout(600)
def test_releases_promote_roll_back_abort_refuse_and_are_promoted_by_hand_in_turn(shop: dict[str, Any]) -> None:
    """One test, not five: each release starts from the version the one before left (2.0 after the
    healthy one), so they must run in this order on one agent, whatever worker runs them."""
    failed_during = _a_healthy_release_is_promoted(shop)
    _a_failing_release_is_rolled_back_and_traffic_is_back_on_stable(shop)
    _abort_sends_traffic_back_to_stable_and_the_running_release_stops(shop)
    _what_a_release_refuses_changes_nothing(shop)
    _a_release_promoted_by_hand_ends_promoted(shop)
    # The target: no request fails during a healthy release, promotion included (a promoted
    # canary's sidecar is registered again in place: test_agent_promotion_reregistration.py).
    assert failed_during == [], failed_during[:5]


def readme_scrape_config(sd_url: str) -> str:
    """The README's Prometheus scrape config for `--metrics-url` with its relabelling as written there;
    only its `consul_sd_configs` line becomes an `http_sd_configs` serving what Consul SD would find
    (support/consul_sd.py: Debian's Prometheus has no Consul SD), and it scrapes every second (the
    release's 5 s interval then holds several scrapes)."""
    text = (REPO / "README.md").read_text()
    block = text[text.index("```yaml", text.index("--metrics-url http://prometheus:9090")):]
    block = block[len("```yaml"):block.index("```", len("```yaml"))]
    sd_line = '    consul_sd_configs: [{server: "consul.service.consul:8500"}]'
    assert sd_line in block and "scrape_interval: 5s" in block, block
    return block.replace(sd_line, f'    http_sd_configs: [{{url: "{sd_url}", refresh_interval: 1s}}]').replace(
        "scrape_interval: 5s", "scrape_interval: 1s")


@pytest.fixture
def prometheus(shop: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus finding the invoice sidecars as Consul service discovery on the dev agent
    would, relabelled as the README says; its URL once it has scraped them."""
    assert PROMETHEUS is not None
    port = free_port()
    with consul_sd.serving(shop["agent"].consul_addr) as sd_url:
        (tmp_path / "prometheus.yml").write_text(readme_scrape_config(sd_url))
        with open(tmp_path / "prometheus.log", "wb") as log:
            proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            def scraped() -> bool:
                query = {"query": 'envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="public_listener",'
                                  'consul_service_id=~".*-invoice-.*-sidecar-proxy"}'}
                try:
                    return bool(requests.get(f"{url}/api/v1/query", params=query, timeout=5).json()["data"]["result"])
                except (requests.RequestException, ValueError, KeyError):
                    return False

            try:
                wait_until(scraped, 60, step=0.5, what="Prometheus has the invoice sidecars' Envoy metrics")
            except AssertionError as e:  # say what discovery found and why no scrape worked
                found = requests.get(f"{url}/api/v1/targets", timeout=5).text[:3000] if proc.poll() is None else ""
                raise AssertionError(f"{e}; targets: {found}; log: "
                                     f"{(tmp_path / 'prometheus.log').read_text()[-2000:]}") from None
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus (scripts/setup.sh)")
def test_a_release_reads_its_figures_from_prometheus(shop: dict[str, Any], prometheus: str) -> None:
    set_invoice(shop["services"], VERSION="6.0")
    result = run(shop["agent"], "release", "invoice", "--services", str(shop["services"]), "--steps", "50,100",
                 "--interval", "5s", "--min-requests", "5", "--max-error-rate", "5%", "--metrics-url", prometheus,
                 "--json")
    report = json.loads(result.stdout)
    assert (result.exit_code, report["outcome"]) == (0, "promoted"), report
    assert report["figures_from"] == f"Prometheus {prometheus}"
    judged = [s for s in report["steps"] if s["verdict"] != "wait"]
    assert [s["percent"] for s in judged] == [50, 100]
    # The canary's and the stable version's requests, as Prometheus scraped them from their sidecars.
    # (Envoy updates its histograms every 5 s, its stats flush: an interval of 5 s holds one for the p99.)
    assert all(s["canary"]["requests"] >= 5 and s["canary"]["p99_ms"] is not None for s in judged), judged
    assert judged[0]["stable"]["requests"] > 0, judged

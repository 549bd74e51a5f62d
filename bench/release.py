"""Canary releases through the mesh (issue 15): split accuracy, failed requests during a healthy
release, detection of a failing one. Prints, never asserts.

    sudo .venv/bin/python bench/release.py [--interval 5s] [--json]    (root: the agent's bridge networking)

The sample shop (order -> invoice -> tax behind the ingress gateway) on an agent, invoice declared
http with one canary and auto_revert. Clients call order through the gateway, so every answer names
the invoice version that served it.

split       a release held at its first step (10%), then its splitter set to 50% by hand: the canary's
            share of 2,000 sequential keep-alive requests at each (issue: within ±2 / ±3 points).
healthy     `nomadmesh release` of 2.0 with steps 10/50/100 and --interval, one keep-alive client and one
            opening a new connection per request, calling the whole time: failed requests of each kind
            over the release, promotion included (issue: 0), and the release's wall time.
failing     the same with a 3.0 answering 50% 500 (FAIL_RATE 0.5): from the first of the canary's 500s
            the clients saw to the last (issue: within one interval + 1 s), those failed requests beside
            the canary's share of one interval's requests (and any other failure apart), the exit code.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from agentkit import PYTHON, REPO, Agent, agent_session, bench_main, host_port, wait_until
from support.steady_client import SteadyClient

REQUESTS_FOR_SPLIT = 2000


def set_invoice(services: Path, **env: str) -> None:
    path = services / "invoice" / "service.json"
    doc = json.loads(path.read_text())
    doc["service"]["connect"]["sidecar_service"]["proxy"]["config"] = {"protocol": "http"}
    doc["nomad"]["update"] = {"min_healthy_time": "500ms", "healthy_deadline": "30s", "progress_deadline": "1m",
                              "canary": 1, "auto_revert": True}
    doc["nomad"]["env"] = env
    # Deregistered, then 1 s for every caller's Envoy to drop it, then stopped: no request lands on a
    # stopping old instance after the promotion (Nomad's advice for zero-downtime updates).
    doc["nomad"]["group"] = {"shutdown_delay": "1s"}
    path.write_text(json.dumps(doc, indent=2))


def release(agent: Agent, services: Path, steps: str, interval: str, *extra: str) -> subprocess.Popen[str]:
    env_args = ["--nomad-addr", agent.nomad_addr, "--consul-addr", agent.consul_addr]
    return subprocess.Popen([PYTHON, "-m", "nomadmesh", "release", "invoice", "--services", str(services),
                             "--steps", steps, "--interval", interval, "--json", *extra, *env_args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def invoice_version(resp: requests.Response) -> str | None:
    return str(json.loads(resp.text.splitlines()[1])["Version"]) if resp.status_code == 200 else None


def canary_share(url: str, canary: str) -> float:
    session = requests.Session()
    seen = Counter(invoice_version(session.get(url, timeout=5)) for _ in range(REQUESTS_FOR_SPLIT))
    return 100 * seen[canary] / REQUESTS_FOR_SPLIT


def splitter(agent: Agent) -> dict[str, Any] | None:
    r = requests.get(f"{agent.consul_addr}/v1/config/service-splitter/invoice", timeout=5)
    return r.json() if r.status_code == 200 else None


def split_figures(agent: Agent, services: Path, url: str) -> dict[str, float]:
    set_invoice(services, VERSION="1.5")
    proc = release(agent, services, "10,100", "1h")  # held at 10% for as long as we measure
    try:
        wait_until(lambda: ((splitter(agent) or {}).get("Splits") or [{}])[-1].get("Weight") == 10, 120,
                   what="the release at 10%")
        share10 = canary_share(url, "1.5")
        live = splitter(agent) or {}
        half = {**{k: v for k, v in live.items() if k not in ("CreateIndex", "ModifyIndex")},
                "Splits": [{"Weight": 50, "ServiceSubset": "stable"}, {"Weight": 50, "ServiceSubset": "canary"}]}
        r = requests.put(f"{agent.consul_addr}/v1/config", params={"cas": live["ModifyIndex"]}, json=half, timeout=5)
        if r.json() is not True:
            raise RuntimeError(f"splitter 50/50 not written: {r.text}")
        time.sleep(0.5)  # Envoy has the new weights within milliseconds; leave it settled
        share50 = canary_share(url, "1.5")
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: traffic back on stable, deployment failed
        proc.communicate(timeout=180)
    return {"split_10_canary_pct": round(share10, 2), "split_50_canary_pct": round(share50, 2)}


def run_release(agent: Agent, services: Path, url: str, interval: str,
                **env: str) -> tuple[dict[str, Any], SteadyClient, float, int]:
    set_invoice(services, **env)
    with SteadyClient(url) as clients:
        wait_until(lambda: clients.counts["keep-alive ok"] > 20, 30, what="clients calling")
        t0 = time.monotonic()
        proc = release(agent, services, "10,50,100", interval, "--min-requests", "5")
        out, err = proc.communicate(timeout=600)
        seconds = time.monotonic() - t0
    try:
        report = json.loads(out)
    except ValueError:
        raise RuntimeError(f"release printed no report ({proc.returncode}): {err[-2000:]}") from None
    return report, clients, seconds, proc.returncode


def release_figures(interval: str) -> dict[str, Any]:
    interval_s = float(interval.rstrip("s"))
    with agent_session() as agent, tempfile.TemporaryDirectory() as tmp:
        services = Path(tmp) / "services"
        shutil.copytree(REPO / "services", services)
        set_invoice(services, VERSION="1.0")
        out = agent.cli("deploy", "--services", str(services))
        if out.returncode != 0:
            raise RuntimeError(f"deploy failed:\n{out.stdout}\n{out.stderr}")
        url = f"http://127.0.0.1:{host_port(agent.running_alloc('ingress'), 'listener_8080')}/"
        wait_until(lambda: requests.get(url, timeout=5).status_code == 200, 30, what="order answering")
        figs: dict[str, Any] = split_figures(agent, services, url)
        figs |= {"split_10_error_pts": round(abs(figs["split_10_canary_pct"] - 10), 2),
                 "split_50_error_pts": round(abs(figs["split_50_canary_pct"] - 50), 2)}

        report, clients, seconds, code = run_release(agent, services, url, interval, VERSION="2.0")
        figs |= {"healthy_release_promoted": int(report["outcome"] == "promoted"),
                 "healthy_release_s": round(seconds, 1),
                 "healthy_failed_keepalive": clients.counts["keep-alive failed"],
                 "healthy_failed_new_conn": clients.counts["new failed"],
                 "healthy_failed_requests": clients.counts["keep-alive failed"] + clients.counts["new failed"],
                 "healthy_requests": sum(clients.counts.values())}

        report, clients, seconds, code = run_release(agent, services, url, interval, VERSION="3.0", FAIL_RATE="0.5")
        # The canary's own failures (order's 502 names invoice's 500); a data-plane 503 is another matter.
        failed = [float(f.split()[0]) for f in clients.failures if "answered 500" in f]
        total = sum(clients.counts.values())
        per_interval = total / seconds * interval_s if seconds else 0
        print(f"failing release: exit {code}, {report['outcome']}: {'; '.join(report['tripped'])}", file=sys.stderr)
        for other in [f for f in clients.failures if "answered 500" not in f][:5]:
            print(f"  other failure: {other}", file=sys.stderr)  # what the data plane did: to look into
        figs |= {"failing_release_exit": code,
                 "failing_release_rolled_back": int(report["outcome"] == "rolled back"),
                 "failing_first_to_last_failure_s": round(failed[-1] - failed[0], 2) if failed else 0.0,
                 "failing_failed_requests": len(failed),
                 "failing_other_failures": len(clients.failures) - len(failed),
                 "failing_canary_share_of_one_interval": round(per_interval * 0.10, 1),
                 "failing_interval_s": interval_s}
    return figs


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, release_figures, argv, interval=(str, "5s"))  # each step's interval, e.g. 5s


if __name__ == "__main__":
    sys.exit(main())

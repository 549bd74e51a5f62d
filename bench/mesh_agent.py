"""Benchmarks through a real dev agent: deploy, intention propagation, CA signing. Prints, never asserts.

    .venv/bin/python bench/mesh_agent.py [--quick] [--json]     (root: bridge networking)

deploy      `nomadmesh deploy` of services/ (order -> invoice -> tax with Envoy sidecars) until the
            first working order call; the same three apps without Connect ("plain": published
            host ports, the seed's INV_SVC_URL/TAX_SVC_URL) on a fresh agent; connect/plain ratio.
intentions  config-entry PUT returned -> enforced at invoice's sidecar: a new connection from
            order's namespace to its invoice upstream is refused (p50/p99 over --toggles), and an
            open keep-alive connection is closed; allow (DELETE) -> served again.
ca          leaf certificates per second through GET /v1/agent/connect/ca/leaf/<service> with a
            distinct service each time (so every answer is a fresh signature, not the agent's
            per-service cache), one client and 4 threads; `openssl speed ecdsap256` signs/s beside.
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from queue import Queue
from typing import Any, TypeVar

import requests

from agentkit import REPO, Agent, agent_session, enter_netns, free_port, host_port, http_get_status, pct, wait_until

T = TypeVar("T")
CHAIN = ["Order", "Invoice", "Tax"]
INVOICE_UPSTREAM_PORT = 6001  # order's local bind port for invoice (services/order/service.json)


def chain_ok(port: int) -> bool:
    r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    return r.status_code == 200 and [json.loads(line)["Service"] for line in r.text.splitlines()] == CHAIN


def timed_deploy(agent: Agent, services: Path) -> float:
    """Seconds from starting `nomadmesh deploy` to the first order -> invoice -> tax answer."""
    t0 = time.perf_counter()
    out = agent.cli("deploy", "--services", str(services))
    if out.returncode != 0:
        raise RuntimeError(f"nomadmesh deploy failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    # With Connect, order publishes nothing: the host calls it through the sample ingress gateway.
    gateway = (services / "ingress" / "service.json").exists()
    port = host_port(agent.running_alloc("ingress"), "listener_8080") if gateway else \
        host_port(agent.running_alloc("order"), "http")
    wait_until(lambda: chain_ok(port), 30, step=0.02, what="order -> invoice -> tax")
    return time.perf_counter() - t0


def plain_services(root: Path, gateway: str, ports: dict[str, int]) -> Path:
    """services/ without Connect: invoice and tax published on host ports, called via the bridge."""
    out = root / "services"
    out.mkdir(parents=True)
    shutil.copy(REPO / "services" / "app.py", out / "app.py")
    urls = {"order": ("INV_SVC_URL", "invoice"), "invoice": ("TAX_SVC_URL", "tax")}
    for name in ("order", "invoice", "tax"):
        doc = json.loads((REPO / "services" / name / "service.json").read_text())
        del doc["service"]["connect"]
        doc["nomad"]["publish"] = ports.get(name, 0)
        env = doc["nomad"].setdefault("env", {})
        env["BIND_ADDR"] = "0.0.0.0"
        if name in urls:
            var, up = urls[name]
            env[var] = f"http://{gateway}:{ports[up]}"
        (out / name).mkdir()
        (out / name / "service.json").write_text(json.dumps(doc))
    return out


def deploy_figures() -> dict[str, float]:
    with agent_session() as agent:
        connect_s = timed_deploy(agent, REPO / "services")
    # Without the mesh, services call each other's published host ports through the bridge
    # gateway. Published ports answer on the agent's bind address only (as a Nomad client's answer
    # on its node address), so the plain run binds the agent to every address; the Connect run
    # keeps the default loopback bind.
    with agent_session(("--bind", "0.0.0.0")) as agent, tempfile.TemporaryDirectory() as tmp:
        services = plain_services(Path(tmp), agent.gateway, {"invoice": free_port(), "tax": free_port()})
        plain_s = timed_deploy(agent, services)
    return {"deploy_connect_s": round(connect_s, 2), "deploy_plain_s": round(plain_s, 2),
            "deploy_connect_plain_ratio": round(connect_s / plain_s, 2)}


class NetnsWorker:
    """Runs callables in a thread that lives in one network namespace."""

    def __init__(self, netns: str) -> None:
        self._jobs: Queue[tuple[Callable[[], Any], Queue[tuple[bool, Any]]] | None] = Queue()
        ready: Queue[BaseException | None] = Queue()

        def loop() -> None:
            try:
                enter_netns(netns)
                ready.put(None)
            except BaseException as e:  # surfaced to the caller below
                ready.put(e)
                return
            while (job := self._jobs.get()) is not None:
                fn, answer = job
                try:
                    answer.put((True, fn()))
                except BaseException as e:
                    answer.put((False, e))

        threading.Thread(target=loop, daemon=True).start()
        if (err := ready.get(timeout=5)) is not None:
            raise err

    def run(self, fn: Callable[[], T]) -> T:
        answer: Queue[tuple[bool, Any]] = Queue()
        self._jobs.put((fn, answer))
        ok, value = answer.get(timeout=120)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self._jobs.put(None)


def http_status(port: int, conn: http.client.HTTPConnection | None = None) -> int | None:
    return http_get_status(port, "/health", conn)


def refused(port: int, conn: http.client.HTTPConnection) -> bool:
    """The next request on the open `conn` is refused: 403 from an http destination's RBAC, or the
    connection closed by a tcp one (no status)."""
    return http_status(port, conn) != 200


def spin(check: Callable[[], bool], timeout: float) -> float | None:
    """Seconds until `check()` holds (tight loop), or None at timeout."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if check():
            return time.perf_counter() - t0
        time.sleep(0.0005)
    return None


def intention_figures(toggles: int) -> dict[str, float]:
    deny = {"Kind": "service-intentions", "Name": "invoice", "Sources": [{"Name": "order", "Action": "deny"}]}
    with agent_session() as agent:
        out = agent.cli("deploy", "--services", str(REPO / "services"))
        if out.returncode != 0:
            raise RuntimeError(f"nomadmesh deploy failed:\n{out.stdout}\n{out.stderr}")
        worker = NetnsWorker(agent.netns(agent.running_alloc("order")))
        entry = f"{agent.consul_addr}/v1/config"
        up = INVOICE_UPSTREAM_PORT
        session = requests.Session()

        def put_deny() -> None:
            session.put(entry, json=deny, timeout=5).raise_for_status()

        def delete() -> None:
            session.delete(f"{entry}/service-intentions/invoice", timeout=5).raise_for_status()

        try:
            worker.run(lambda: wait_until(lambda: http_status(up) == 200, 30, what="invoice via order's sidecar"))
            new_conn, restored, cut, misses = [], [], [], 0
            for _ in range(toggles):
                put_deny()  # the clock starts when the write has returned
                t = worker.run(lambda: spin(lambda: http_status(up) != 200, 5))
                if t is None:
                    misses += 1
                else:
                    new_conn.append(t)
                delete()
                restored.append(worker.run(lambda: spin(lambda: http_status(up) == 200, 5)) or 5.0)
            for _ in range(toggles):
                conn = worker.run(lambda: http.client.HTTPConnection("127.0.0.1", up, timeout=5))
                assert worker.run(partial(http_status, up, conn)) == 200
                put_deny()
                # An http destination (the sample's invoice) refuses the open connection's next request
                # with 403 from its RBAC; a tcp one has its connection closed (status None): either is a refusal.
                c = worker.run(partial(spin, partial(refused, up, conn), 5))
                conn.close()
                if c is None or c >= 5:
                    misses += 1
                else:
                    cut.append(c)
                delete()
                worker.run(lambda: spin(lambda: http_status(up) == 200, 5))
        finally:
            worker.close()
    ms = lambda xs, p: round(pct(xs, p) * 1000, 2) if xs else float("nan")  # noqa: E731
    return {
        "intention_toggles": toggles,
        "intention_new_conn_p50_ms": ms(new_conn, 50), "intention_new_conn_p99_ms": ms(new_conn, 99),
        "intention_open_conn_p50_ms": ms(cut, 50), "intention_open_conn_p99_ms": ms(cut, 99),
        "intention_allow_p50_ms": ms(restored, 50), "intention_allow_p99_ms": ms(restored, 99),
        "intention_missed": misses,
    }


def openssl_signs_per_s(seconds: int) -> float:
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"],
                         capture_output=True, text=True, timeout=seconds * 4 + 30).stdout
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"cannot read openssl speed output:\n{out}")
    return float(m.group(1))


def ca_figures(n: int, openssl_s: int) -> dict[str, float]:
    with agent_session() as agent:
        base = f"{agent.consul_addr}/v1/agent/connect/ca/leaf"
        session = requests.Session()
        session.get(f"{base}/warm-up", timeout=5).raise_for_status()
        t0 = time.perf_counter()
        serials = set()
        for i in range(n):
            r = session.get(f"{base}/bench-seq-{i}", timeout=5)
            r.raise_for_status()
            serials.add(r.json()["SerialNumber"])
        seq = n / (time.perf_counter() - t0)
        assert len(serials) == n, "leaf answers were not distinct signatures"

        local = threading.local()

        def one(i: int) -> str:
            s = getattr(local, "s", None) or requests.Session()
            local.s = s
            r = s.get(f"{base}/bench-par-{i}", timeout=10)
            r.raise_for_status()
            return r.json()["SerialNumber"]

        with ThreadPoolExecutor(4) as pool:
            t0 = time.perf_counter()
            par_serials = set(pool.map(one, range(n)))
            par = n / (time.perf_counter() - t0)
        assert len(par_serials) == n
    ossl = openssl_signs_per_s(openssl_s)
    return {"ca_leaf_per_s": round(seq), "ca_leaf_per_s_4_clients": round(par),
            "openssl_ecdsap256_signs_per_s": round(ossl), "ca_leaf_openssl_ratio": round(seq / ossl, 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=("deploy", "intentions", "ca"))
    args = ap.parse_args(argv)
    figs: dict[str, float] = {}
    if args.only in (None, "ca"):
        figs |= ca_figures(200 if args.quick else 2000, 1 if args.quick else 3)
    if args.only in (None, "intentions"):
        figs |= intention_figures(5 if args.quick else 25)
    if args.only in (None, "deploy"):
        figs |= deploy_figures()
    print(json.dumps(figs, indent=2) if args.json else "\n".join(f"{k:34} {v}" for k, v in figs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

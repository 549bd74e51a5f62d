"""Route/split change → enforced by Envoy (issue 15): how long after a config-entry write returns
the caller's real Envoy sends traffic the new way. Prints, never asserts.

    .venv/bin/python bench/l7_push.py [--changes 50] [--json]

On a dev agent, tests/support/l7_mesh.py's mesh: `api` in two subsets (v1, v2; an Envoy each), a
caller `web` with its Envoy. Each change is one PUT /v1/config; the clock starts when it has
returned and stops at the first fresh request through web's upstream listener that the new
configuration serves:

split   service-splitter 100/0 ↔ 0/100 (the first request answered by the other version)
route   service-router `/admin` → admin, written ↔ deleted (the first `/admin/x` answered by
        admin, then by api again)
anchor  in the same run, a service-intentions deny web → api written (the first request refused):
        the intention push the README's row 2 measures, side by side on the same (shared) machine

Both go agent state → proxy snapshot → RDS → Envoy; a split change resends only the route
configuration, clusters and listeners stay as they are. For splits, `applied` is the same interval
read from Envoy itself: the `last_updated` its config dump gives the route configuration (when
Envoy applied it), minus the wall-clock time the write returned; it leaves out the probe requests'
own delays, which dominate the tail on a loaded machine.
"""
from __future__ import annotations

import datetime as dt
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from agentkit import agent_session, bench_main, cpu_seconds, pct, wait_until
from support.l7_mesh import CALLER, L7Mesh

SPIN_LIMIT_S = 5.0


def spin(pred: Callable[[], bool], limit: float = SPIN_LIMIT_S) -> float | None:
    """Seconds until `pred()` holds (checked back to back), None if it never did within `limit`."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if pred():
            return time.perf_counter() - t0
    return None


def route_applied_at(mesh: L7Mesh, name: str = "api") -> float:
    """When the caller's Envoy applied route configuration `name` (epoch seconds), from its config dump."""
    url = f"http://127.0.0.1:{mesh.admin_ports[CALLER]}/config_dump?resource=dynamic_route_configs"
    for cfg in requests.get(url, timeout=5).json()["configs"]:
        if cfg.get("route_config", {}).get("name") == name:
            return dt.datetime.fromisoformat(cfg["last_updated"].replace("Z", "+00:00")).timestamp()
    raise LookupError(f"no route configuration {name!r} in the config dump")


def l7_push_figures(changes: int = 50) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="nml7"))
    split_s: list[float] = []
    route_s: list[float] = []
    anchor_s: list[float] = []
    applied_s: list[float] = []
    misses = 0
    load_before, bench_cpu = os.getloadavg()[0], _own_cpu_s()
    agent_cpu = 0.0
    try:
        with agent_session() as agent:
            mesh = L7Mesh(agent.consul_addr, work)
            try:
                mesh.start()
                mesh.split(0, 100)
                wait_until(lambda: mesh.served_by() == "api-v2", 60, what="web -> api v2 through Envoy")
                mesh.split(100, 0)
                wait_until(lambda: mesh.served_by() == "api-v1", 30, what="web -> api v1 through Envoy")
                for i in range(changes):
                    want = "api-v2" if i % 2 == 0 else "api-v1"
                    mesh.split(*((0, 100) if want == "api-v2" else (100, 0)))
                    written = time.time()
                    t = spin(lambda: mesh.served_by() == want)  # noqa: B023 (called before `want` changes)
                    if t is None:
                        misses += 1
                    else:
                        split_s.append(t)
                        applied_s.append(route_applied_at(mesh) - written)
                admin = [{"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "admin"}}]
                for i in range(max(2, changes // 2)):
                    if i % 2 == 0:
                        mesh.entry("service-router", "api", Routes=admin)
                        t = spin(lambda: mesh.served_by("/admin/x") == "admin")
                    else:
                        mesh.delete_entry("service-router", "api")
                        t = spin(lambda: mesh.served_by("/admin/x") == "api-v1")
                    if t is None:
                        misses += 1
                    else:
                        route_s.append(t)
                deny = [{"Name": "web", "Action": "deny"}]
                for _ in range(max(2, changes // 2)):
                    mesh.entry("service-intentions", "api", Sources=deny)
                    t = spin(lambda: mesh.call()[0] != 200)
                    if t is None:
                        misses += 1
                    else:
                        anchor_s.append(t)
                    mesh.delete_entry("service-intentions", "api")
                    spin(lambda: mesh.call()[0] == 200)
            finally:
                assert agent.proc is not None
                agent_cpu = cpu_seconds(agent.proc.pid)
                mesh.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ms = lambda xs, p: round(pct(xs, p) * 1000, 2) if xs else float("nan")  # noqa: E731
    return {
        "l7_split_changes": len(split_s), "l7_split_p50_ms": ms(split_s, 50), "l7_split_p90_ms": ms(split_s, 90),
        "l7_split_p99_ms": ms(split_s, 99),
        "l7_split_applied_p50_ms": ms(applied_s, 50), "l7_split_applied_p99_ms": ms(applied_s, 99),
        "l7_route_changes": len(route_s), "l7_route_p50_ms": ms(route_s, 50), "l7_route_p90_ms": ms(route_s, 90),
        "l7_route_p99_ms": ms(route_s, 99),
        "l7_anchor_intention_p50_ms": ms(anchor_s, 50), "l7_anchor_intention_p99_ms": ms(anchor_s, 99),
        "l7_missed": misses,
        # The machine is shared: CPU time (user+sys) beside the wall figures, and the load they were taken at.
        "cpu_agent_s": round(agent_cpu, 2), "cpu_bench_s": round(_own_cpu_s() - bench_cpu, 2),
        "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def _own_cpu_s() -> float:
    """User + system CPU of this process (the probes, the backends) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, l7_push_figures, argv, changes=(int, 50))


if __name__ == "__main__":
    raise SystemExit(main())

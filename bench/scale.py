"""Scale on the dev agent: N services with Envoy sidecars. Prints, never asserts.

    .venv/bin/python bench/scale.py [--sizes 10,25,50] [--json]     (root: bridge networking)

For each size, on a fresh agent: N synthetic services (`python3 -m http.server`, each with a
sidecar) plus one `probe` service whose sidecar has an upstream to every one of them, deployed
with `nomadmesh deploy` (which returns when every deployment is healthy). Figures:
  deploy_s            deploy command start -> all healthy and the probe reaches every service
  agent_cpu_s         agent process CPU (user+sys) spent during that deploy
  agent_rss_mib       agent RSS after the deploy
  sidecar_private_mib median / max private memory (smaps_rollup Private_*) over the N+1 Envoys
  intention_all_ms    one service-intentions write (`*` -> `*` deny) returned -> a new connection
                      from the probe to every one of the N services is refused (enforced at all
                      N proxies); the p50 over the proxies is printed too, and probe_round_ms,
                      one unchanged pass of the probe over all N (the measurement's resolution)
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from agentkit import agent_session, cpu_seconds, enter_netns, pct, pids_matching, private_mib, rss_mib
from nomadmesh.agent.datadir import alloc_root

APP_PORT = 8080
BASE_BIND = 7000
UPDATE = {"min_healthy_time": "1s", "healthy_deadline": "5m", "progress_deadline": "10m"}


def synthetic_services(root: Path, n: int) -> tuple[Path, list[str]]:
    names = [f"s{i:03d}" for i in range(n)]
    out = root / "services"

    def write(name: str, upstreams: list[dict[str, object]]) -> None:
        proxy = {"proxy": {"upstreams": upstreams}} if upstreams else {}
        doc = {
            "service": {"name": name, "port": APP_PORT, "connect": {"sidecar_service": proxy}},
            "nomad": {
                "driver": "raw_exec", "command": "python3",
                "args": ["-m", "http.server", str(APP_PORT), "--bind", "0.0.0.0"],
                "resources": {"cpu": 20, "memory": 32},
                "checks": [{"type": "http", "path": "/", "interval": "5s", "timeout": "2s"}],
                "update": UPDATE,
            },
        }
        (out / name).mkdir(parents=True)
        (out / name / "service.json").write_text(json.dumps(doc))

    # Derived allows (probe -> each service) would outrank the one `*` -> `*` deny this bench times:
    # it measures how fast a single write reaches every proxy, so the project derives none.
    (root / "nomadmesh.json").write_text(json.dumps({"name": "scale", "derive_intentions": False}))
    for name in names:
        write(name, [])
    write("probe", [{"destination_name": name, "local_bind_port": BASE_BIND + i} for i, name in enumerate(names)])
    return out, names


def refused(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        return resp.status != 200
    except (OSError, http.client.HTTPException):
        return True
    finally:
        conn.close()


def probe_all(netns: str, ports: list[int], want_refused: bool, timeout: float, workers: int = 5) -> list[float]:
    """Seconds until each port shows the wanted verdict, polled from `netns` by a few threads."""
    t0 = time.perf_counter()
    found: dict[int, float] = {}
    errors: list[BaseException] = []

    def work(mine: list[int]) -> None:
        try:
            enter_netns(netns)
            pending = list(mine)
            while pending and time.perf_counter() - t0 < timeout:
                for port in list(pending):
                    if refused(port) == want_refused:
                        found[port] = time.perf_counter() - t0
                        pending.remove(port)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(ports[i::workers],)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    if len(found) != len(ports):
        verb = "denying" if want_refused else "allowing"
        raise TimeoutError(f"{len(ports) - len(found)} of {len(ports)} proxies not {verb} after {timeout}s")
    return [found[p] for p in ports]


def one_size(n: int) -> dict[str, float]:
    with agent_session() as agent, tempfile.TemporaryDirectory() as tmp:
        services, _names = synthetic_services(Path(tmp), n)
        ports = [BASE_BIND + i for i in range(n)]
        pid = agent.proc.pid  # type: ignore[union-attr]
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        out = agent.cli("deploy", "--services", str(services), "--timeout", "900", timeout=1000)
        if out.returncode != 0:
            raise RuntimeError(f"deploy of {n} services failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        netns = agent.netns(agent.running_alloc("probe"))
        probe_all(netns, ports, want_refused=False, timeout=120)
        deploy_s = time.perf_counter() - t0
        cpu = cpu_seconds(pid) - cpu0
        # The probe's own resolution: one pass over every port when nothing changes.
        probe_round = max(probe_all(netns, ports, want_refused=False, timeout=30))
        rss = rss_mib(pid)
        envoys = pids_matching("envoy", str(alloc_root(agent.data_dir, None)))  # bootstraps are in the alloc dir
        mem = [private_mib(p) for p in envoys]

        entries = f"{agent.consul_addr}/v1/config"
        deny = {"Kind": "service-intentions", "Name": "*", "Sources": [{"Name": "*", "Action": "deny"}]}
        requests.put(entries, json=deny, timeout=10).raise_for_status()
        to_deny = probe_all(netns, ports, want_refused=True, timeout=30)
        requests.delete(f"{entries}/service-intentions/*", timeout=10).raise_for_status()
        to_allow = probe_all(netns, ports, want_refused=False, timeout=30)
    return {
        f"scale_{n}_deploy_s": round(deploy_s, 1),
        f"scale_{n}_agent_cpu_s": round(cpu, 1),
        f"scale_{n}_agent_rss_mib": round(rss, 1),
        f"scale_{n}_sidecars": len(envoys),
        f"scale_{n}_sidecar_private_mib_median": round(statistics.median(mem), 1),
        f"scale_{n}_sidecar_private_mib_max": round(max(mem), 1),
        f"scale_{n}_intention_all_ms": round(max(to_deny) * 1000, 1),
        f"scale_{n}_intention_p50_ms": round(pct(to_deny, 50) * 1000, 1),
        f"scale_{n}_allow_all_ms": round(max(to_allow) * 1000, 1),
        f"scale_{n}_probe_round_ms": round(probe_round * 1000, 1),
    }


def scale_figures(sizes: tuple[int, ...]) -> dict[str, float]:
    figs: dict[str, float] = {}
    for n in sizes:
        try:
            figs |= one_size(n)
        except (RuntimeError, TimeoutError) as e:  # report what happened at this size, keep the rest
            print(f"scale {n}: {e}", file=sys.stderr)
            figs[f"scale_{n}_failed"] = 1
    return figs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,25,50")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    figs = scale_figures(tuple(int(s) for s in args.sizes.split(",")))
    print(json.dumps(figs, indent=2) if args.json else "\n".join(f"{k:40} {v}" for k, v in figs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

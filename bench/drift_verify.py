"""What drift detection and edge verification cost, on 50 services with a random upstream graph.

    .venv/bin/python bench/drift_verify.py [--services 50] [--seed 7]

A dev agent with default policy deny (no root needed: the jobs are registered with --detach and
never run). Measured, median of 5, in this process:

* plan: render + /v1/jobs/parse + one Nomad plan per unchanged job (the drift check) + orphans,
  i.e. `live_plan` + `live_orphans` as `nomadmesh plan` runs them, all jobs already deployed;
* verify: `verify_edges` over every declared edge (one intention list, one policy probe, one
  /v1/health/connect read per destination), every edge allowed and every destination healthy
  (a connect-proxy registered per service with a passing TTL check).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import requests

from agentkit import agent_session
from nomadmesh.deploy import intentions as di
from nomadmesh.deploy.jobs import load_jobs
from nomadmesh.deploy.live import live_orphans, live_plan
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import consul_client, target_from_env
from nomadmesh.deploy.verify import verify_edges


def write_services(root: Path, n: int, rng: random.Random) -> list[tuple[str, str]]:
    """n definitions, each calling up to 3 earlier ones; the edges."""
    edges = []
    (root / "nomadmesh.json").write_text(json.dumps({"name": "bench"}))
    for i in range(n):
        name = f"s{i:02d}"
        ups = sorted(rng.sample(range(i), min(i, rng.randint(0, 3))))
        edges += [(name, f"s{u:02d}") for u in ups]
        folder = root / "services" / name
        folder.mkdir(parents=True)
        upstreams = [{"destination_name": f"s{u:02d}", "local_bind_port": 9000 + u} for u in ups]
        (folder / "service.json").write_text(json.dumps({
            "service": {"name": name, "port": 8000 + i,
                        "connect": {"sidecar_service": {"proxy": {"upstreams": upstreams}}}},
            "nomad": {"driver": "docker", "image": "nginx:1.27"}}))
    return edges


def median_s(fn: object, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nmbench-drift-"))
    edges = write_services(root, args.services, random.Random(args.seed))
    with agent_session(("--default-policy", "deny")) as agent:
        deployed = agent.cli("deploy", "--services", str(root / "services"), "--detach")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        target = target_from_env({}, agent.nomad_addr, agent.consul_addr)
        api, consul = NomadAPI(target), consul_client(target)

        def plan() -> None:
            rendered = load_jobs(root / "services")
            p = live_plan(api, rendered)
            assert not p.has_changes and not live_orphans(api, rendered)

        plan_s = median_s(plan)
        for i in range(args.services):
            name = f"s{i:02d}"
            requests.put(f"{agent.consul_addr}/v1/agent/service/register", timeout=10, json={
                "Name": f"{name}-sidecar-proxy", "ID": f"{name}-sidecar-proxy", "Kind": "connect-proxy",
                "Port": 21000 + i, "Proxy": {"DestinationServiceName": name},
                "Check": {"CheckID": f"{name}-ttl", "Name": "ttl", "TTL": "600s", "Status": "passing"}}
            ).raise_for_status()
        for src, dst in edges:
            di.set_intention(consul, src, dst, "allow")

        def verify() -> None:
            assert all(e.ok for e in verify_edges(consul, edges, health_wait_s=0))

        verify_s = median_s(verify)
    print(f"{args.services} services, {len(edges)} edges: plan with drift check + orphans {plan_s:.2f} s "
          f"(target 1 s for jobs + entries); edge verification {verify_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()

"""Mesh policy as code (issue 13): plan and entry writes for N services with a random upstream graph,
and `deploy` to a working chain on an agent with --default-policy deny. Prints, never asserts.

    .venv/bin/python bench/policy.py [-n 50] [--json]     (root: the agent's bridge networking)

plan         `nomadmesh plan`'s work in process (load + render + the target's /v1/jobs/parse per
             job + live jobs + Nomad's dry run per job + live config entries + the entry diff), for N
             services each calling 0-3 random earlier ones (seeded), nothing deployed yet; the
             pure entry diff (desired policy vs live entries) alone beside it.
entries      deploy's config-entry writes for that plan (one CAS write per destination), then
             the plan again once converged (no entry changes left).
deny deploy  `nomadmesh deploy` of services/ (order -> invoice -> tax, the ingress gateway) on an
             agent with --default-policy deny, until the first answer through the chain: it works
             only because of the derived allows (compare bench/mesh_agent.py's deploy_connect_s).
"""
from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

from agentkit import REPO, agent_session, bench_main
from mesh_agent import timed_deploy
from nomadmesh.deploy.entries import EntryWriter
from nomadmesh.deploy.jobs import load_jobs
from nomadmesh.deploy.live import live_plan, nomad_plans
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import consul_client, target_from_env
from nomadmesh.mesh.entry_plan import plan_entries
from nomadmesh.progress import SilentProgress


def random_mesh(root: Path, n: int, seed: int = 13) -> Path:
    """N Connect services, each with 0-3 upstreams among the services before it (a DAG), seeded."""
    rng = random.Random(seed)
    services = root / "services"
    for i in range(n):
        name = f"svc{i:03d}"
        ups = rng.sample(range(i), min(i, rng.randint(0, 3)))
        proxy: dict[str, object] = {"upstreams": [{"destination_name": f"svc{u:03d}", "local_bind_port": 7000 + j}
                               for j, u in enumerate(ups)]}
        if i % 5 == 0:
            proxy["config"] = {"protocol": "http"}  # some service-defaults entries too
        doc = {"service": {"name": name, "port": 8080, "connect": {"sidecar_service": {"proxy": proxy}}},
               "nomad": {"driver": "raw_exec", "command": "python3", "args": ["-m", "http.server", "8080"]}}
        (services / name).mkdir(parents=True)
        (services / name / "service.json").write_text(json.dumps(doc))
    return services


def plan_figures(n: int) -> dict[str, float]:
    with agent_session() as agent, tempfile.TemporaryDirectory() as tmp:
        target = target_from_env({}, agent.nomad_addr, agent.consul_addr)
        api, consul = NomadAPI(target), consul_client(target)
        services = random_mesh(Path(tmp) / "mesh", n)

        t0 = time.perf_counter()
        rendered = load_jobs(services)
        plan = live_plan(api, rendered, consul)
        nomad_plans(api, plan)
        plan_s = time.perf_counter() - t0

        live_intentions: dict = {}
        t0 = time.perf_counter()
        for _ in range(10):
            plan_entries(rendered.policy, live_intentions, {})
        pure_ms = (time.perf_counter() - t0) / 10 * 1000

        writes = [e for e in plan.entries if e.writes]
        t0 = time.perf_counter()
        applied = EntryWriter(consul, rendered.policy.project).write(plan.entries, SilentProgress())
        write_s = time.perf_counter() - t0
        if not all(a.done for a in applied):
            raise RuntimeError(f"entry writes skipped: {[a.note for a in applied if not a.done]}")

        t0 = time.perf_counter()
        again = live_plan(api, rendered, consul)
        replan_s = time.perf_counter() - t0
        if any(e.writes for e in again.entries):
            raise RuntimeError("the entries did not converge")
    return {"policy_services": n, "policy_entry_changes": len(writes),
            "policy_destinations": len({e.name for e in writes}),
            "policy_plan_s": round(plan_s, 3), "policy_entry_diff_ms": round(pure_ms, 2),
            "policy_entry_writes_s": round(write_s, 3), "policy_replan_s": round(replan_s, 3)}


def deny_deploy_figures() -> dict[str, float]:
    with agent_session(("--default-policy", "deny")) as agent:
        return {"deploy_deny_s": round(timed_deploy(agent, REPO / "services"), 2)}


def policy_figures(n: int) -> dict[str, float]:
    return plan_figures(n) | deny_deploy_figures()


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, policy_figures, argv, n=(int, 50))  # --n: services in the random mesh


if __name__ == "__main__":
    sys.exit(main())

"""The `up` and `down` workflows around the local agent (nomadmesh/deploy/local_agent.py)."""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from nomadmesh.deploy.live import managed_jobs
from nomadmesh.deploy.local_agent import read_record, start_agent, stop_agent
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import Target, target_from_env
from nomadmesh.errors import TargetError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
DRAIN_TIMEOUT_S = 30.0


def ensure_agent(api: NomadAPI, target: Target, cwd: Path, grpc_port: int | None,
                 default_policy: str = "deny", dns_port: int = 8600) -> str:
    """Use the Nomad answering at the target; if none and the target is this machine, start an agent
    (zero trust by default: intentions default to deny, the project's derived allows open the edges)."""
    try:
        api.ping()
        return f"Using Nomad at {target.nomad.url}"
    except TargetError:
        if target.nomad.host not in LOCAL_HOSTS or target.nomad.scheme != "http":
            raise
    record = start_agent(cwd, target.nomad.url, target.consul.url, target.nomad.port, target.consul.port,
                         grpc_port, bind=target.nomad.host, default_policy=default_policy, dns_port=dns_port)
    return (f"Started nomadmesh agent --dev --default-policy {default_policy} (pid {record.pid}) "
            f"at {target.nomad.url}; log in .nomadmesh/agent.log")


def _wait_stopped(api: NomadAPI, names: list[str], timeout_s: float) -> None:
    """Until the purged jobs' allocations are gone (bounded): then the agent has released them."""
    deadline = time.monotonic() + timeout_s
    for name in names:
        while time.monotonic() < deadline:
            try:
                allocs = api.allocations(name).value
            except TargetError:
                break
            if all(a.get("ClientStatus") not in ("running", "pending") for a in allocs):
                break
            time.sleep(0.1)


def down(cwd: Path, env: Mapping[str, str], nomad_addr: str | None, consul_addr: str | None) -> list[str]:
    record = read_record(cwd)
    if record and not nomad_addr and not env.get("NOMAD_ADDR"):
        nomad_addr = record.nomad_addr
    if record and not consul_addr and not env.get("CONSUL_HTTP_ADDR"):
        consul_addr = record.consul_addr
    api = NomadAPI(target_from_env(env, nomad_addr, consul_addr))
    out: list[str] = []
    try:
        names = [j["ID"] for j in managed_jobs(api)]
    except TargetError as e:
        names = []
        out.append(f"No Nomad to clean up ({e})")
    for name in names:
        api.deregister(name, purge=True)
        out.append(f"Purged {name}")
    if names and record is None:
        _wait_stopped(api, names, DRAIN_TIMEOUT_S)
    out.append(stop_agent(cwd).capitalize().replace("Agent", "Agent", 1))
    return out

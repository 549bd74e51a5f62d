"""Bridge-mode allocations: own network namespace, ports mapped to the host, nothing left after stop.

Each test agent gets its own bridge, subnet and namespace prefix (NOMADMESH_CNI_* variables), so
the host's `nomad` bridge and other tests' namespaces are never touched."""
from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.agents import InProcessAgent
from support.net import free_port
from support.nomad_jobs import get_text
from support.waiting import wait_until

pytestmark = pytest.mark.root

BRIDGE_JOB = """
job "echo" {
  group "echo" {
    network {
      mode = "bridge"
      port "http" { to = 8080 }
    }
    update {
      min_healthy_time = "500ms"
      health_check     = "task_states"
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
    }
  }
}
"""
SERVER = ("import http.server;"
          "h=type('H',(http.server.BaseHTTPRequestHandler,),{'do_GET':lambda s:(s.send_response(200),s.end_headers(),"
          "s.wfile.write(s.connection.getsockname()[0].encode()))});"
          "http.server.ThreadingHTTPServer(('0.0.0.0',8080),h).serve_forever()")


def host_snapshot(prefix: str, bridge: str) -> dict[str, Any]:
    netns = sorted(p.name for p in Path("/run/netns").glob(f"{prefix}*")) if Path("/run/netns").is_dir() else []
    links = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {"netns": netns, "veths": links.strip(), "rules": rules}


@pytest.fixture
def bridge_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessAgent]:
    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    tag = secrets.token_hex(3)
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nmt{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", f"nmt{tag}-")
    agent = InProcessAgent(tmp_path)
    agent.tag = tag  # type: ignore[attr-defined]
    try:
        yield agent
    finally:
        agent.close()
        subprocess.run(["ip", "link", "delete", f"nmt{tag}"], capture_output=True)


def test_bridge_job_is_reachable_on_its_mapped_port_and_leaves_nothing(bridge_agent: InProcessAgent) -> None:
    agent, tag = bridge_agent, bridge_agent.tag  # type: ignore[attr-defined]
    job = agent.client.jobs.parse(BRIDGE_JOB % SERVER.replace('"', '\\"'), canonicalize=True)
    agent.client.jobs.register_job({"Job": job})

    def running() -> dict[str, Any] | None:
        stubs = [s for s in agent.client.job.get_allocations("echo") if s["ClientStatus"] == "running"]
        return agent.client.allocation.get_allocation(stubs[0]["ID"]) if stubs else None

    alloc = wait_until(running, 30)
    port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
    assert port["To"] == 8080 and 20000 <= port["Value"] <= 32000
    ns_ip = alloc["NetworkStatus"]["Address"]
    assert ns_ip.startswith(f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.")
    body = get_text(f"http://127.0.0.1:{port['Value']}/", 20)
    assert body == ns_ip  # answered inside the namespace, reached through the host port mapping
    during = host_snapshot(f"nmt{tag}-", f"nmt{tag}")
    assert during["netns"] == [f"nmt{tag}-{alloc['ID'][:8]}"] and during["veths"]
    assert alloc["ID"] in during["rules"] or ns_ip in during["rules"]

    agent.client.job.deregister_job("echo", purge=True)
    wait_until(lambda: agent.client.allocation.get_allocation(alloc["ID"])["ClientStatus"] == "complete", 20)
    after = host_snapshot(f"nmt{tag}-", f"nmt{tag}")
    assert after["netns"] == [] and after["veths"] == ""
    assert alloc["ID"] not in after["rules"] and ns_ip not in after["rules"]
    leases = list((agent.ctx.config.data_dir / "cni").rglob("*"))
    assert not any(ns_ip in p.name for p in leases)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port['Value']}/", timeout=2)


def _probe_from_netns(netns: str, url: str) -> str:
    """GET `url` from inside a network namespace: the body, or the error's class name."""
    code = ("import sys,urllib.request\ntry: print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n"
            "except OSError as e: print('error', type(e).__name__)")
    out = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", code, url],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def test_port_mappings_answer_on_the_agent_bind_address_only(bridge_agent: InProcessAgent) -> None:
    """Issue 10 finding 4: a mapping DNATs only `-d <bind>`, so another local address (the bridge
    gateway, seen from the host or from another allocation's namespace) does not reach the app."""
    agent, tag = bridge_agent, bridge_agent.tag  # type: ignore[attr-defined]
    hcl = (BRIDGE_JOB % SERVER.replace('"', '\\"')).replace('group "echo" {', 'group "echo" {\n    count = 2', 1)
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(hcl, canonicalize=True)})

    def both_running() -> list[dict[str, Any]] | None:
        stubs = [s for s in agent.client.job.get_allocations("echo") if s["ClientStatus"] == "running"]
        return [agent.client.allocation.get_allocation(s["ID"]) for s in stubs] if len(stubs) == 2 else None

    first, other = wait_until(both_running, 30)
    host_port = first["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    ns_ip = first["NetworkStatus"]["Address"]
    gateway = f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.1"
    assert get_text(f"http://127.0.0.1:{host_port}/", 20) == ns_ip  # the bind address works

    dnat = [line for line in subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
            .splitlines() if f"--dport {host_port} " in f"{line} " and "DNAT" in line]
    assert dnat and all(" -d 127.0.0.1/32 " in f" {line} " for line in dnat), dnat
    # The bridge gateway is a local address of the host: not a way in from the host...
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{gateway}:{host_port}/", timeout=3)
    # ...nor from another allocation's namespace (it must go through the mesh, not the host port).
    other_ns = f"nmt{tag}-{other['ID'][:8]}"
    assert _probe_from_netns(other_ns, f"http://{ns_ip}:8080/") == ns_ip  # the probe itself works
    assert _probe_from_netns(other_ns, f"http://{gateway}:{host_port}/").startswith("error")


def leftovers(agent: InProcessAgent, tag: str, alloc_ids: list[str]) -> list[str]:
    """What is still on the host for these allocations: rules naming them or an address in the test
    subnet, namespaces with the agent's prefix, veths on its bridge, IP leases in its data dir."""
    subnet = f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}."
    snap = host_snapshot(f"nmt{tag}-", f"nmt{tag}")
    found = [f"rule: {r}" for r in snap["rules"].splitlines()
             if any(a in r for a in alloc_ids) or (subnet in r and r.startswith("-A "))]
    found += [f"netns: {n}" for n in snap["netns"]]
    found += [f"veth: {v}" for v in snap["veths"].splitlines() if v]
    ipam = agent.ctx.config.data_dir / "cni" / "ipam"
    found += [f"lease: {p.name}" for p in ipam.rglob("*") if p.is_file() and p.name.startswith(subnet)]
    return found


def test_an_allocation_stopped_within_a_second_leaves_nothing(bridge_agent: InProcessAgent) -> None:
    """Issue 10 finding 8: register and stop at once, repeatedly; no rule, namespace, veth or lease
    may outlive the allocations (a stale DNAT would send traffic to whoever reuses the address)."""
    agent, tag = bridge_agent, bridge_agent.tag  # type: ignore[attr-defined]
    job = agent.client.jobs.parse(BRIDGE_JOB % SERVER.replace('"', '\\"'), canonicalize=True)
    seen: list[str] = []
    for delay in (0.0, 0.05, 0.2, 0.5):
        agent.client.jobs.register_job({"Job": job})
        wait_until(lambda: agent.client.job.get_allocations("echo"), 10)
        time.sleep(delay)
        agent.client.job.deregister_job("echo", purge=False)
        ids = [a["ID"] for a in agent.client.job.get_allocations("echo")]
        seen += ids
        wait_until(lambda: all(a["ClientStatus"] in ("complete", "failed")
                             for a in agent.client.job.get_allocations("echo")), 30)
    assert seen
    wait_until(lambda: not agent.scheduler._runners, 30)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not leftovers(agent, tag, seen), 10)

    assert leftovers(agent, tag, seen) == []


def test_leftovers_of_this_agent_are_removed_on_start_and_nothing_of_others(bridge_agent: InProcessAgent) -> None:
    """Rules, namespace and lease of a stopped allocation of this agent (e.g. left by a crash) are
    gone once the agent starts; a namespace with another prefix, a rule of another network and a
    namespace of an allocation this agent never knew (another agent's) are left alone."""
    agent, tag = bridge_agent, bridge_agent.tag  # type: ignore[attr-defined]
    job = agent.client.jobs.parse(BRIDGE_JOB % SERVER.replace('"', '\\"'), canonicalize=True)
    agent.client.jobs.register_job({"Job": job})
    alloc = wait_until(lambda: next((a for a in agent.client.job.get_allocations("echo")
                                   if a["ClientStatus"] == "running"), None), 30)
    alloc = agent.client.allocation.get_allocation(alloc["ID"])
    ip, aid = alloc["NetworkStatus"]["Address"], alloc["ID"]
    agent.client.job.deregister_job("echo")
    wait_until(lambda: agent.client.allocation.get_allocation(aid)["ClientStatus"] == "complete", 20)
    agent.close()

    ours, theirs, unknown = f"nmt{tag}-{aid[:8]}", f"nmx{tag}-{aid[:8]}", f"nmt{tag}-0badc0de"
    chain, foreign_chain = f"CNI-{tag}stale", f"CNI-{tag}other"
    lease_dir = agent.ctx.config.data_dir / "cni" / "ipam" / f"nmt{tag}"
    planted = [["ip", "netns", "add", ours], ["ip", "netns", "add", theirs], ["ip", "netns", "add", unknown],
               ["iptables", "-t", "nat", "-N", chain],
               ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", f"{ip}/32", "-m", "comment", "--comment",
                f'name: "nmt{tag}" id: "{aid}"', "-j", chain],
               ["iptables", "-t", "nat", "-N", foreign_chain],
               ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", f"{ip}/32", "-m", "comment", "--comment",
                f'name: "nmx{tag}" id: "{aid}"', "-j", foreign_chain],
               ["iptables", "-t", "filter", "-N", "CNI-FORWARD"],
               ["iptables", "-t", "filter", "-A", "CNI-FORWARD", "-d", f"{ip}/32", "-j", "ACCEPT"]]
    second: InProcessAgent | None = None
    try:
        for argv in planted:
            subprocess.run(argv, capture_output=True, timeout=30)
        lease_dir.mkdir(parents=True, exist_ok=True)
        (lease_dir / ip).write_text(f"{aid}\neth0")
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert chain in rules and f"-d {ip}/32" in rules  # planted for real

        second = InProcessAgent(agent.ctx.config.data_dir)
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        netns = {p.name for p in Path("/run/netns").iterdir()}
        assert ours not in netns and chain not in rules and f"-d {ip}/32" not in rules
        assert not (lease_dir / ip).exists()
        assert theirs in netns and unknown in netns and foreign_chain in rules
    finally:
        if second is not None:
            second.close()
        for name in (ours, theirs, unknown):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        for argv in reversed(planted):
            if "-A" in argv:
                subprocess.run([*argv[:3], "-D", *argv[4:]], capture_output=True)
        for c in (chain, foreign_chain):
            subprocess.run(["iptables", "-t", "nat", "-X", c], capture_output=True)


def test_port_maps_of_an_agent_bound_elsewhere_answer_there_and_on_the_node_loopback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bound to another address (127.0.0.2 here), mappings answer on it and on 127.0.0.1, where the
    agent registers and checks services; not on a third address; a wildcard bind maps on all."""
    from types import SimpleNamespace

    from nomadmesh.agent.context import AgentConfig
    from nomadmesh.agent.nomad.platform import Platform
    from nomadmesh.agent.runtime.process import TaskProcess, TaskSpec

    if os.geteuid() != 0:
        pytest.skip("bridge networking needs root")
    def platform_bound_to(bind: str) -> Platform:
        return Platform(SimpleNamespace(config=AgentConfig(data_dir=tmp_path, bind=bind, alloc_dir=tmp_path / "alloc")))  # type: ignore[arg-type]

    assert platform_bound_to("0.0.0.0").mapping_host_ips() == [""]
    tag = secrets.token_hex(3)
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nmt{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", f"nmt{tag}-")
    platform = platform_bound_to("127.0.0.2")
    assert platform.mapping_host_ips() == ["127.0.0.2", "127.0.0.1"]
    alloc_id, port = "0123abcd-0000-4000-8000-000000000000", free_port()
    netns, ip = platform.setup_network(alloc_id, [(port, 8080)])
    server = TaskProcess(TaskSpec(name="web", argv=("python3", "-c", SERVER), env={"PATH": os.environ["PATH"]},
                                  cwd=tmp_path, stdout_path=tmp_path / "out", stderr_path=tmp_path / "err",
                                  netns_path=netns, kill_timeout_s=2))
    server.start()
    try:
        assert get_text(f"http://127.0.0.2:{port}/", 20) == ip
        assert get_text(f"http://127.0.0.1:{port}/", 5) == ip
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.3:{port}/", timeout=3)
    finally:
        server.stop()
        platform.teardown_network(alloc_id)
        platform.remove_bridge()
        subprocess.run(["ip", "link", "delete", f"nmt{tag}"], capture_output=True)

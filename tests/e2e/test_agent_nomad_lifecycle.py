"""Allocation lifecycle on a real agent subprocess, in bridge mode with a real Envoy sidecar
(issue 10 findings 7 and 8): an allocation whose network namespace is deleted behind the agent's
back (`ip netns del`, also while the agent is down) is failed with its tasks (the Envoy too)
stopped and a task event saying why, and the group's reschedule policy replaces it."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.meshkit import pids_with
from support.waiting import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, a bridge, iptables"),
]

SERVER = ("import http.server;"
          "h=type('H',(http.server.BaseHTTPRequestHandler,),{'do_GET':lambda s:(s.send_response(200),s.end_headers(),"
          "s.wfile.write(b'ok'))});"
          "http.server.ThreadingHTTPServer(('127.0.0.1',8080),h).serve_forever()")

CONNECT_JOB = """
job "lost" {
  group "lost" {
    network {
      mode = "bridge"
    }
%(reschedule)s
    service {
      name = "lost"
      port = "8080"
      connect {
        sidecar_service {}
      }
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%(server)s"]
      }
    }
  }
}
"""


@pytest.fixture
def bridge_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Own bridge, subnet and namespace prefix for the agent subprocess; the prefix is returned."""
    tag = secrets.token_hex(3)
    monkeypatch.setenv("NOMADMESH_CNI_BRIDGE", f"nml{tag}")
    monkeypatch.setenv("NOMADMESH_CNI_SUBNET", f"10.{int(tag[:2], 16)}.{int(tag[2:4], 16)}.0/24")
    monkeypatch.setenv("NOMADMESH_NETNS_PREFIX", f"nml{tag}-")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    yield f"nml{tag}-"
    subprocess.run(["ip", "link", "delete", f"nml{tag}"], capture_output=True)


def task_pids(alloc_dir: Path) -> list[int]:
    """Processes running in the agent's alloc dir: its tasks (apps and Envoys run in their task dirs)."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "cwd").startswith(f"{alloc_dir}/"):
                out.append(int(proc.name))
        except OSError:
            continue
    return out


def get(agent: Any, path: str) -> Any:
    r = requests.get(f"{agent.nomad_addr}{path}", timeout=10)
    r.raise_for_status()
    return r.json()


def register(agent: Any, hcl: str) -> None:
    job = requests.post(f"{agent.nomad_addr}/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True},
                        timeout=10)
    assert job.status_code == 200, job.text
    r = requests.post(f"{agent.nomad_addr}/v1/jobs", json={"Job": job.json()}, timeout=10)
    assert r.status_code == 200, r.text


def running_alloc(agent: Any, job: str, exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        for stub in get(agent, f"/v1/job/{job}/allocations"):
            if stub["ID"] in exclude or stub["ClientStatus"] != "running":
                continue
            alloc = get(agent, f"/v1/allocation/{stub['ID']}")
            if all(ts["State"] == "running" for ts in alloc["TaskStates"].values()) and len(alloc["TaskStates"]) == 2:
                return alloc
        return None
    return wait_until(ready, 60, step=0.2, what=f"{job} running with its sidecar")


def test_deleted_namespace_fails_the_allocation_and_stops_its_tasks_and_envoy(
        agent_factory: Callable[..., Any], bridge_env: str) -> None:
    agent = agent_factory()
    register(agent, CONNECT_JOB % {"reschedule": "", "server": SERVER.replace('"', '\\"')})
    alloc = running_alloc(agent, "lost")
    netns = f"{bridge_env}{alloc['ID'][:8]}"
    envoys = wait_until(lambda: pids_with("envoy", str(agent.alloc_dir)), 10, what="Envoy exec'd")
    tasks = wait_until(lambda: t if len(t := task_pids(agent.alloc_dir)) >= 2 else None, 10, what="both tasks")
    assert len(envoys) == 1 and Path(f"/run/netns/{netns}").exists()

    subprocess.run(["ip", "netns", "delete", netns], check=True)

    failed = wait_until(lambda: (a := get(agent, f"/v1/allocation/{alloc['ID']}"))["ClientStatus"] == "failed" and a,
                        30, step=0.2, what="allocation failed")
    for name, ts in failed["TaskStates"].items():
        assert ts["State"] == "dead" and ts["Failed"], (name, ts)
        assert any("network namespace" in e["DisplayMessage"] and "deleted" in e["DisplayMessage"]
                   for e in ts["Events"]), ts["Events"]
    wait_until(lambda: not pids_with("envoy", str(agent.alloc_dir)), 15, what="the sidecar's Envoy stopped")
    wait_until(lambda: not set(tasks) & set(task_pids(agent.alloc_dir)), 15, what="the app and its Envoy stopped")
    services = requests.get(f"{agent.consul_addr}/v1/agent/services", timeout=10).json()
    assert not any(s["Service"] in ("lost", "lost-sidecar-proxy") for s in services.values())


RESCHEDULE = """    reschedule {
      attempts       = 1
      interval       = "1h"
      delay          = "5s"
      delay_function = "constant"
      unlimited      = false
    }"""


def test_a_failed_allocation_is_rescheduled_per_its_policy(agent_factory: Callable[..., Any], bridge_env: str) -> None:
    """Nomad's reschedule policy: the failed allocation gets a follow-up evaluation waiting `delay`,
    then a replacement carrying PreviousAllocation and a RescheduleTracker; once the attempts in
    the interval are spent, a further failure stays failed."""
    agent = agent_factory()
    register(agent, CONNECT_JOB % {"reschedule": RESCHEDULE, "server": SERVER.replace('"', '\\"')})
    first = running_alloc(agent, "lost")
    subprocess.run(["ip", "netns", "delete", f"{bridge_env}{first['ID'][:8]}"], check=True)

    failed = wait_until(lambda: (a := get(agent, f"/v1/allocation/{first['ID']}"))["FollowupEvalID"] and a,
                        30, step=0.2, what="a follow-up evaluation for the failed allocation")
    assert failed["ClientStatus"] == "failed"
    follow = get(agent, f"/v1/evaluation/{failed['FollowupEvalID']}")
    assert follow["TriggeredBy"] == "alloc-failure"
    assert follow["StatusDescription"] == "created for delayed rescheduling"
    assert follow["WaitUntil"] != "0001-01-01T00:00:00Z"

    second = running_alloc(agent, "lost", exclude={first["ID"]})
    assert second["PreviousAllocation"] == first["ID"]
    (event,) = second["RescheduleTracker"]["Events"]
    assert event["PrevAllocID"] == first["ID"] and event["Delay"] == 5_000_000_000
    old = get(agent, f"/v1/allocation/{first['ID']}")
    assert old["NextAllocation"] == second["ID"] and old["DesiredStatus"] == "stop"
    assert old["DesiredDescription"] == "alloc was rescheduled because it failed"
    assert get(agent, f"/v1/evaluation/{failed['FollowupEvalID']}")["Status"] == "complete"

    # The one attempt in the hour is spent: the replacement's failure is evaluated and left failed.
    subprocess.run(["ip", "netns", "delete", f"{bridge_env}{second['ID'][:8]}"], check=True)
    wait_until(lambda: get(agent, f"/v1/allocation/{second['ID']}")["ClientStatus"] == "failed", 30, step=0.2,
               what="the replacement failed")
    wait_until(lambda: (evs := [e for e in get(agent, "/v1/job/lost/evaluations")
                                if e["TriggeredBy"] == "alloc-failure"])
               and len(evs) >= 3 and all(e["Status"] == "complete" for e in evs), 30, step=0.2,
               what="the replacement's failure evaluated")
    assert get(agent, f"/v1/allocation/{second['ID']}")["FollowupEvalID"] == ""
    assert len(get(agent, "/v1/job/lost/allocations")) == 2


def test_namespace_deleted_while_the_agent_was_down_fails_and_replaces_the_allocation(
        agent_factory: Callable[..., Any], bridge_env: str) -> None:
    """SIGKILLed agent, namespace deleted meanwhile, tasks still running in it: the restarted agent
    adopts them only to stop them, fails the allocation and its reschedule policy replaces it."""
    agent = agent_factory()
    register(agent, CONNECT_JOB % {"reschedule": RESCHEDULE, "server": SERVER.replace('"', '\\"')})
    first = running_alloc(agent, "lost")
    tasks = wait_until(lambda: t if len(t := task_pids(agent.alloc_dir)) >= 2 else None, 10, what="both tasks")
    agent.stop(kill=True)
    subprocess.run(["ip", "netns", "delete", f"{bridge_env}{first['ID'][:8]}"], check=True)
    assert set(tasks) <= set(task_pids(agent.alloc_dir))  # the tasks outlived agent and namespace

    agent.start()
    failed = wait_until(lambda: (a := get(agent, f"/v1/allocation/{first['ID']}"))["ClientStatus"] == "failed" and a,
                        30, step=0.2, what="allocation failed")
    assert all(any("network namespace" in e["DisplayMessage"] for e in ts["Events"])
               for ts in failed["TaskStates"].values()), failed["TaskStates"]
    wait_until(lambda: not set(tasks) & set(task_pids(agent.alloc_dir)), 15, what="the old tasks stopped")
    second = running_alloc(agent, "lost", exclude={first["ID"]})
    assert second["PreviousAllocation"] == first["ID"]

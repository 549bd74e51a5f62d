"""/v1/client/stats and /v1/client/allocation/<id>/stats over real HTTP with python-nomad, on an
in-process agent running a real task whose memory and CPU use are known."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nomad.api.exceptions as nx
import pytest
import requests

from support.agents import InProcessAgent
from support.waiting import wait_until

JOB = """
job "hog" {
  group "hog" {
    task "hog" {
      driver = "raw_exec"
      config {
        command = "python3"
        args    = ["-c", "%s"]
      }
    }
  }
}
"""
# 64 MiB touched by the task itself, and a child that burns CPU: both must show in the task's usage.
HOG = ("import os,subprocess,sys,time;b=bytearray(64*1024*1024);b[::4096]=b'x'*(len(b)//4096);"
       "c=subprocess.Popen([sys.executable,'-c','while True: pass']);"
       "print(c.pid,flush=True);time.sleep(3600)")


@pytest.fixture
def hog(agent: InProcessAgent) -> dict[str, Any]:
    agent.client.jobs.register_job({"Job": agent.client.jobs.parse(JOB % HOG, canonicalize=True)})

    def child_pid() -> tuple[str, int] | None:
        for stub in agent.client.job.get_allocations("hog"):
            out = requests.get(f"{agent.addr}/v1/client/fs/logs/{stub['ID']}",
                               params={"task": "hog", "type": "stdout", "plain": "true"}).text
            if stub["ClientStatus"] == "running" and out.endswith("\n"):
                return stub["ID"], int(out)
        return None

    alloc_id, child = wait_until(child_pid, 20)
    return {"ID": alloc_id, "child": child}


def test_alloc_stats_measure_the_tasks_process_tree(agent: InProcessAgent, hog: dict[str, Any]) -> None:
    stats = agent.client.client.allocation.read_allocation_stats(hog["ID"])
    task = stats["Tasks"]["hog"]
    assert str(hog["child"]) in task["Pids"] and len(task["Pids"]) == 2
    usage = task["ResourceUsage"]
    assert usage["MemoryStats"]["RSS"] >= 64 * 1024 * 1024  # the parent's 64 MiB plus the child
    assert usage["MemoryStats"]["Measured"] == ["RSS", "Swap"]
    assert usage["CpuStats"]["Measured"] == ["System Mode", "User Mode", "Percent"]
    assert stats["ResourceUsage"]["MemoryStats"]["RSS"] == usage["MemoryStats"]["RSS"]  # one task: total = task
    assert stats["Timestamp"] == task["Timestamp"] > 0
    busy = wait_until(lambda: (s := agent.client.client.allocation.read_allocation_stats(hog["ID"]))
                      ["Tasks"]["hog"]["Pids"][str(hog["child"])]["CpuStats"]["Percent"] > 5 and s)
    child_cpu = busy["Tasks"]["hog"]["Pids"][str(hog["child"])]["CpuStats"]
    assert child_cpu["UserMode"] > 0 and child_cpu["TotalTicks"] > 0

    other = requests.get(f"{agent.addr}/v1/client/allocation/{hog['ID']}/stats", params={"task": "nope"}).json()
    assert other["Tasks"] == {} and other["ResourceUsage"]["MemoryStats"]["RSS"] == 0
    with pytest.raises(nx.URLNotFoundNomadException):
        agent.client.client.allocation.read_allocation_stats("0b1c2d3e-0000-0000-0000-000000000000")


def test_host_stats_describe_this_machine(agent: InProcessAgent) -> None:
    host = agent.client.client.stats.read_stats()
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert host["Memory"]["Total"] == int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 < host["Memory"]["Available"] <= host["Memory"]["Total"]
    assert [c["CPU"] for c in host["CPU"]] == [f"cpu{i}" for i in range(len(host["CPU"]))]
    cores = [line for line in Path("/proc/stat").read_text().splitlines() if re.match(r"cpu\d", line)]
    assert len(host["CPU"]) == len(cores)
    assert host["AllocDirStats"]["Size"] > 0 and host["Uptime"] > 0 and host["Timestamp"] > 0
    node_id = agent.client.nodes.get_nodes()[0]["ID"]
    assert agent.client.client.stats.read_stats(node_id)["Memory"]["Total"] == host["Memory"]["Total"]
    r = requests.get(f"{agent.addr}/v1/client/stats", params={"node_id": "not-a-node"})
    assert (r.status_code, r.text.strip()) == (404, "Unknown node not-a-node")

"""Nomad's /v1/client/gc on the dev agent, over real HTTP with python-nomad: the client destroys the
directories of its finished allocations; the allocations stay listed until the system GC."""
from __future__ import annotations

from pathlib import Path

import nomad
import requests

from support.agents import RunningAgent
from support.waiting import wait_until

JOB = """
job "client-gc" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "true"
      }
    }
  }
}
"""


def test_client_gc_removes_finished_allocation_dirs(module_agent: RunningAgent) -> None:
    n = nomad.Nomad(host="127.0.0.1", port=module_agent.nomad_port, timeout=10)
    n.jobs.register_job({"Job": n.jobs.parse(JOB, canonicalize=True)})
    alloc = wait_until(lambda: next((a for a in n.job.get_allocations("client-gc")
                                     if a["ClientStatus"] == "complete"), None), 60)
    alloc_dir = Path(module_agent.alloc_dir) / alloc["ID"]
    assert alloc_dir.is_dir()
    unknown = requests.get(f"{module_agent.nomad_addr}/v1/client/gc", params={"node_id": "nope"}, timeout=10)
    assert (unknown.status_code, unknown.text.strip()) == (500, "Unknown node nope")
    assert alloc_dir.is_dir()
    node_id = n.nodes.get_nodes()[0]["ID"]
    n.client.gc_all_allocations.garbage_collect(node_id)
    assert not alloc_dir.exists()
    assert [a["ID"] for a in n.job.get_allocations("client-gc")] == [alloc["ID"]]  # the server keeps it

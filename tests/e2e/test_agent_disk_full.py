"""Issue 10 finding 6: a full disk killed task supervision silently.

On a real full disk (a small tmpfs as the data dir, filled up): a KV write is a 500 naming the real
cause, not SQLite's "cannot rollback"; a task killed meanwhile is still restarted and the API says
so (restarts counted, running again); a check's new result is recorded; once space is freed, writes
work again.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nomad
import pytest
import requests

from support.agents import RunningAgent
from support.net import free_port
from support.waiting import wait_until

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]  # root: it mounts a tmpfs

JOB = '''job "diskfull" {
  group "g" {
    restart {
      attempts = 5
      delay    = "1s"
      interval = "5m"
      mode     = "fail"
    }
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo $$ > $NOMAD_TASK_DIR/pid && exec sleep 300"]
      }
    }
  }
}'''


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 24 MiB tmpfs, unmounted at the end (after the agent on it has stopped: requested first)."""
    mountpoint = Path(tempfile.mkdtemp(prefix="nomadmesh-diskfull-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mountpoint)], check=True,
                   timeout=10)
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], check=False, timeout=30).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mountpoint)], check=False, timeout=30)  # detached at least
        mountpoint.rmdir()


def fill(disk: Path) -> Path:
    """Write zeros until the disk refuses another byte."""
    filler = disk / "filler"
    chunk = b"\0" * (1 << 16)
    write_until_full(filler, "wb", chunk)
    write_until_full(filler, "ab", b"\0" * 512)  # the last partial chunk: down to the very last block
    return filler


def write_until_full(path: Path, mode: str, block: bytes) -> None:
    """Append `block` until the disk says ENOSPC; any other error is not the full disk we made, so it propagates."""
    with open(path, mode, buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise


def task_state(client: nomad.Nomad) -> tuple[dict[str, Any], dict[str, Any]]:
    alloc = client.job.get_allocations("diskfull")[0]
    return alloc, client.allocation.get_allocation(alloc["ID"])["TaskStates"]["t"]


def task_pid(client: nomad.Nomad, alloc_id: str) -> int:
    alloc_dir = Path(client.agent.get_agent()["config"]["Client"]["AllocDir"])
    return int((alloc_dir / alloc_id / "t" / "local" / "pid").read_text().strip())


def check_status(agent: RunningAgent) -> str:
    checks = requests.get(f"{agent.consul_addr}/v1/health/checks/diskcheck", timeout=5).json()
    return str(checks[0]["Status"])


def test_full_disk_fails_writes_clearly_and_tasks_are_still_restarted(
        small_disk: Path, agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory(data_dir=small_disk / "data")
    client = nomad.Nomad(host="127.0.0.1", port=agent.nomad_port, timeout=10)
    client.jobs.register_job({"Job": client.jobs.parse(JOB, canonicalize=True)})
    alloc, _ = wait_until(lambda: (s := task_state(client)) and s[1]["State"] == "running" and s, 30,
                          what="task running")
    first_pid = wait_until(lambda: task_pid(client, alloc["ID"]), 10, what="pid file")

    port = free_port()
    check = {"Name": "diskcheck", "Port": port, "Check": {"TCP": f"127.0.0.1:{port}", "Interval": "1s"}}
    requests.put(f"{agent.consul_addr}/v1/agent/service/register", json=check, timeout=5).raise_for_status()
    wait_until(lambda: check_status(agent) == "critical", 10, what="check critical (nothing listens)")

    filler = fill(small_disk)
    r = requests.put(f"{agent.consul_addr}/v1/kv/full/k", data=b"v" * 100_000, timeout=10)
    assert r.status_code == 500
    assert "no space left on device" in r.text and "rollback" not in r.text, r.text

    os.kill(first_pid, signal.SIGKILL)
    # The supervisor survives the failed state write, restarts the task, and the state says so.
    def restarted() -> bool:
        _, ts = task_state(client)
        pid = task_pid(client, alloc["ID"])
        return ts["State"] == "running" and ts["Restarts"] == 1 and pid != first_pid and \
            Path(f"/proc/{pid}").exists()
    wait_until(restarted, 30, what="task restarted and recorded on a full disk")
    _, ts = task_state(client)
    assert [e["Type"] for e in ts["Events"]][-3:] == ["Terminated", "Restarting", "Started"]
    # Still full: ordinary writes keep failing instead of eating the room kept for task states.
    assert requests.put(f"{agent.consul_addr}/v1/kv/full/k", data=b"v", timeout=10).status_code == 500

    # Check results are recorded on the full disk too: the check turns passing once something listens.
    with socket.create_server(("127.0.0.1", port)):
        wait_until(lambda: check_status(agent) == "passing", 10, what="check result recorded on a full disk")

    filler.unlink()
    wait_until(lambda: requests.put(f"{agent.consul_addr}/v1/kv/full/k", data=b"v", timeout=10).status_code == 200,
               10, what="writes accepted again once space is free")
    assert requests.get(f"{agent.consul_addr}/v1/kv/full/k?raw", timeout=5).content == b"v"

"""Issue 10 finding 3: any local user could take any service's identity (the part that needs root).

Another user reads no state and reaches no xDS socket; tasks run as their job's `user` with
no_new_privs, `exec` as nobody by default, and an unknown user fails the task with a Driver Failure
naming it. (Modes of the data dir and the xDS TCP port: tests/agent/test_agent_private_files.py.)
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nomad
import pytest

from support.agents import RunningAgent
from support.consul_api import put_kv
from support.waiting import wait_until

NOBODY = pwd.getpwnam("nobody")
root_only = pytest.mark.root  # running tasks as another user, reading as another user


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A world-traversable dir (pytest's own tmp dirs are 0700, which would hide what the agent does)."""
    path = Path(tempfile.mkdtemp(prefix="nomadmesh-h3-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


PROBE = """import socket, sys
try:
    print(open(sys.argv[1], "rb").read(16))
except OSError as e:
    print(type(e).__name__)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[2])
    print("connected")
except OSError as e:
    print(type(e).__name__)
"""


@root_only
def test_another_user_reads_no_state_and_reaches_no_xds_socket(
        agent_factory: Callable[..., RunningAgent], open_parent: Path) -> None:
    agent = agent_factory(data_dir=open_parent / "data")
    put_kv(agent, "secret/db-password", b"hunter2")
    out = subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
                          "/usr/bin/python3", "-c", PROBE, str(agent.data_dir / "state.db"),
                          str(agent.data_dir / "xds.sock")], capture_output=True, text=True, timeout=20)
    assert out.stdout.split() == ["PermissionError", "PermissionError"], out.stderr


# --- tasks run as their user ------------------------------------------------------------------

JOB = '''job "%(job)s" {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "t" {
      driver = "%(driver)s"
      %(user)s
      config {
        command = "/bin/sh"
        args    = ["-c", "echo $$ > $NOMAD_TASK_DIR/pid && touch $NOMAD_TASK_DIR/written && exec sleep 300"]
      }
    }
  }
}'''


def run_job(agent: RunningAgent, job: str, driver: str, user: str | None) -> dict[str, Any]:
    client = nomad.Nomad(host="127.0.0.1", port=agent.nomad_port, timeout=10)
    hcl = JOB % {"job": job, "driver": driver, "user": f'user = "{user}"' if user else ""}
    client.jobs.register_job({"Job": client.jobs.parse(hcl, canonicalize=True)})

    def settled() -> dict[str, Any] | None:
        allocs = client.job.get_allocations(job)
        ts = (allocs[0].get("TaskStates") or {}).get("t") if allocs else None
        if ts and (ts["State"] == "dead" or ts["State"] == "running"):
            return allocs[0]
        return None
    return wait_until(settled, 30, what=f"job {job} running or dead")


def task_process(agent: RunningAgent, alloc: dict[str, Any]) -> dict[str, str]:
    """/proc/<pid>/status of the task, found through the pid it wrote into its own dir."""
    client = nomad.Nomad(host="127.0.0.1", port=agent.nomad_port, timeout=10)
    alloc_dir = Path(client.agent.get_agent()["config"]["Client"]["AllocDir"])
    pid_file = alloc_dir / alloc["ID"] / "t" / "local" / "pid"
    pid = int(wait_until(lambda: pid_file.read_text().strip(), 10, what="the task's pid file"))
    status = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)


@root_only
@pytest.mark.parametrize("driver,user,uid", [
    ("raw_exec", "nobody", NOBODY.pw_uid),
    ("exec", None, NOBODY.pw_uid),  # Nomad's exec driver: nobody unless the job says otherwise
    ("raw_exec", None, 0),  # Nomad's raw_exec: the agent's own user, root here
])
def test_task_runs_as_its_user_without_new_privileges(running_agent: RunningAgent, driver: str,
                                                      user: str | None, uid: int) -> None:
    alloc = run_job(running_agent, f"as-{driver.replace('_', '-')}-{user or 'default'}", driver, user)
    assert alloc["TaskStates"]["t"]["State"] == "running", alloc["TaskStates"]["t"]["Events"]
    status = task_process(running_agent, alloc)
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split()[0] == str(NOBODY.pw_gid if uid else 0)
    assert status["NoNewPrivs"].strip() == ("1" if uid else "0")
    client = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    task_dir = Path(client.agent.get_agent()["config"]["Client"]["AllocDir"]) / alloc["ID"] / "t"
    assert os.stat(task_dir / "local" / "written").st_uid == uid  # its task dir is writable by it


@root_only
def test_unknown_user_fails_the_task_naming_it(running_agent: RunningAgent) -> None:
    alloc = run_job(running_agent, "as-nosuchuser", "raw_exec", "nosuchuser-h3")
    ts = alloc["TaskStates"]["t"]
    assert ts["State"] == "dead" and ts["Failed"] is True
    failure = next(e for e in ts["Events"] if e["Type"] == "Driver Failure")
    assert "failed to identify user 'nosuchuser-h3': user: unknown user nosuchuser-h3" in failure["DisplayMessage"]

"""Issue 10 finding 7 and the corrupt state file: what the agent does with a data dir it cannot use.

A second agent on a data dir another agent holds refuses to start (flock), naming the holder's pid,
exit 1, and leaves the first agent and its tasks alone. A state file that is not a usable SQLite
database is a one-line error saying what to do, exit 1, no traceback.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nomad
import requests

from nomadmesh.agent.state import State
from support.agents import RunningAgent
from support.net import free_port
from support.paths import REPO
from support.waiting import wait_until

SLEEPER = '''job "held" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo $$ > $NOMAD_TASK_DIR/pid && exec sleep 300"]
      }
    }
  }
}'''


def start_agent(data_dir: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`nomadmesh agent --dev` on `data_dir`, expected to exit by itself; killed if it does not."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nomadmesh", "agent", "--dev", "--data-dir", str(data_dir),
         "--nomad-port", str(free_port()), "--consul-port", str(free_port()), "--dns-port", "-1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the agent did not refuse the data dir; it ran:\n{err[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def test_second_agent_on_a_held_data_dir_refuses_and_touches_nothing(running_agent: RunningAgent) -> None:
    client = nomad.Nomad(host="127.0.0.1", port=running_agent.nomad_port, timeout=10)
    client.jobs.register_job({"Job": client.jobs.parse(SLEEPER, canonicalize=True)})
    alloc = wait_until(lambda: next((a for a in client.job.get_allocations("held")
                                     if a["ClientStatus"] == "running"), None), 30, what="task running")
    alloc_dir = Path(client.agent.get_agent()["config"]["Client"]["AllocDir"])
    pid = int(wait_until(lambda: (alloc_dir / alloc["ID"] / "t" / "local" / "pid").read_text().strip(), 10,
                         what="pid file"))
    state_before = (running_agent.data_dir / "state.db").stat()

    second = start_agent(running_agent.data_dir)
    assert second.returncode == 1
    assert error_lines(second.stderr) == [
        f"Error: data dir {running_agent.data_dir} is in use by another agent (pid {running_agent.pid}); "
        "stop that agent or choose another --data-dir"]
    assert "Traceback" not in second.stderr
    # The first agent, its task and its state are as they were.
    assert Path(f"/proc/{pid}").exists()
    assert (running_agent.data_dir / "state.db").stat().st_mtime_ns == state_before.st_mtime_ns
    assert requests.get(f"{running_agent.nomad_addr}/v1/allocation/{alloc['ID']}", timeout=5).json()[
        "ClientStatus"] == "running"
    assert (running_agent.data_dir / "agent.lock").read_text().strip() == str(running_agent.pid)


def test_data_dir_is_free_again_once_its_agent_is_gone(agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory()
    agent.restart(kill=True)  # SIGKILL: the kernel drops the lock with the process, no stale lock file
    assert requests.get(f"{agent.consul_addr}/v1/status/leader", timeout=5).status_code == 200


def test_a_state_file_that_is_not_a_database_is_a_one_line_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.db").write_bytes(b"this is not what the agent wrote\n" * 200)
    result = start_agent(data)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"Error: state file {data}/state.db cannot be used (file is not a database): restore it from a backup, "
        "or move it away (with its -wal and -shm files) to start with an empty state"]
    assert "Traceback" not in result.stderr


def test_a_damaged_state_database_is_a_one_line_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    state = State(data / "state.db")
    for i in range(300):
        state.put("kv", f"k{i:04d}", "x" * 500)
    state._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    state.close()
    raw = bytearray((data / "state.db").read_bytes())
    page = 4096
    raw[2 * page:6 * page] = b"\xff" * (4 * page)  # scribble over a few b-tree pages
    (data / "state.db").write_bytes(bytes(raw))
    result = start_agent(data)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"Error: state file {data}/state.db cannot be used (")
    assert line.endswith("restore it from a backup, or move it away (with its -wal and -shm files) "
                         "to start with an empty state")
    assert "Traceback" not in result.stderr

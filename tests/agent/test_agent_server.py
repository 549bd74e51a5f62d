"""The agent process: starts on the ports it is given, answers both APIs, stops cleanly on SIGTERM
and SIGINT, refuses a port in use with a one-line error, binds to loopback unless told otherwise."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from support.agents import RunningAgent
from support.net import free_port
from support.paths import REPO
from support.waiting import wait_until


def test_agent_starts_answers_both_apis_and_stops_on_sigterm(running_agent: RunningAgent) -> None:
    consul = requests.get(f"{running_agent.consul_addr}/v1/status/leader", timeout=5)
    nomad = requests.get(f"{running_agent.nomad_addr}/v1/status/leader", timeout=5)
    assert consul.status_code == 200 and consul.json().endswith(":8300")
    assert nomad.status_code == 200 and isinstance(nomad.json(), str)
    assert (running_agent.data_dir / "state.db").exists()

    proc = running_agent.proc
    assert proc is not None
    assert running_agent.stop() == 0  # a clean exit, not the SIGKILL stop() sends after 30 s
    assert "agent stopped" in running_agent.log_tail()


def test_agent_stops_cleanly_on_sigint(running_agent: RunningAgent) -> None:
    proc = running_agent.proc
    assert proc is not None
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert "received SIGINT" in running_agent.log_tail()


def test_port_in_use_is_a_one_line_error_naming_the_port(running_agent: RunningAgent, tmp_path: Path) -> None:
    busy = running_agent.consul_port
    result = subprocess.run(
        [sys.executable, "-m", "nomadmesh", "agent", "--dev", "--data-dir", str(tmp_path / "d"),
         "--nomad-port", str(free_port()), "--consul-port", str(busy), "--grpc-port", str(free_port()),
         "--dns-port", "-1"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Consul HTTP API: port {busy} on 127.0.0.1 is already in use "
                      f"(choose another with --consul-port)"]
    assert "Traceback" not in result.stderr
    # the running agent is untouched
    assert requests.get(f"{running_agent.consul_addr}/v1/status/leader", timeout=5).status_code == 200


def test_binds_loopback_by_default_and_bind_changes_it(agent_factory: Callable[..., RunningAgent]) -> None:
    default = agent_factory()
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{default.consul_port}"], capture_output=True,
                               text=True).stdout
    assert f"127.0.0.1:{default.consul_port}" in listening

    anywhere = agent_factory("--bind", "127.0.0.2")
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{anywhere.consul_port}"], capture_output=True,
                               text=True).stdout
    assert f"127.0.0.2:{anywhere.consul_port}" in listening


def test_dev_without_data_dir_uses_a_throwaway_dir_removed_on_stop(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    consul_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nomadmesh", "agent", "--dev", "--nomad-port", str(free_port()),
         "--consul-port", str(consul_port), "--grpc-port", str(free_port()), "--dns-port", "-1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: proc.poll() is not None
                   or requests.get(f"http://127.0.0.1:{consul_port}/v1/status/leader", timeout=1).ok,
                   30, "agent answers or exits")
        assert proc.poll() is None, "agent exited"
        dirs = list(tmp_path.glob("nomadmesh-dev-*"))
        assert len(dirs) == 1 and (dirs[0] / "state.db").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert list(tmp_path.glob("nomadmesh-dev-*")) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

"""Issue 10 finding 3, the part without root: the data dir is 0700 and the state, its WAL, the CA key,
the lock and the xDS socket 0600, also when the dir existed before with looser modes; there is no xDS
TCP port unless --grpc-port asks for one, and then it is the only one. (Other users and tasks run as
their user: tests/e2e/test_agent_private.py.)"""
from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from support.agents import RunningAgent
from support.consul_api import put_kv
from support.net import free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def tcp_listeners(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (ss -p names the owning process)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if f"pid={pid}," in line}


def test_data_dir_state_keys_and_socket_are_private_even_in_an_old_0755_dir(
        agent_factory: Callable[..., RunningAgent], tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "state.db").touch()
    os.chmod(data / "state.db", 0o644)  # an agent of before left it world-readable
    agent = agent_factory(data_dir=data)
    put_kv(agent, "secret/db-password", b"hunter2")  # forces WAL writes
    assert mode(data) == 0o700
    for name in ("state.db", "state.db-wal", "state.db-shm", "agent.lock", "connect/root.key", "xds.sock"):
        assert mode(data / name) == 0o600, name
    assert mode(data / "connect") == 0o700
    assert stat.S_ISSOCK(os.lstat(data / "xds.sock").st_mode)


def test_no_xds_tcp_port_unless_asked(agent_factory: Callable[..., RunningAgent]) -> None:
    # The HTTP APIs and Consul's DNS interface (which also answers over TCP), and no xDS port.
    default = agent_factory()
    assert tcp_listeners(default.pid) == {default.nomad_port, default.consul_port, default.dns_port}
    port = free_port()
    opened = agent_factory("--grpc-port", str(port))
    assert tcp_listeners(opened.pid) == {opened.nomad_port, opened.consul_port, opened.dns_port, port}

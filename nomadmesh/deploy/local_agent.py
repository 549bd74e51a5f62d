"""The dev agent `nomadmesh up` starts in the background, and `down` stops.

Everything lives in `.nomadmesh/` under the working directory:
    agent.json   pid, addresses and argv of the agent we started (the pid file)
    agent.log    its stdout and stderr
    data/        its data dir
`down` only signals a pid recorded there whose command line is still a nomadmesh agent, so a
reused pid is never killed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nomadmesh.errors import AgentError

STATE_DIR = ".nomadmesh"
STATE_FILE = "agent.json"
LOG_FILE = "agent.log"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AgentRecord:
    pid: int
    nomad_addr: str
    consul_addr: str
    argv: tuple[str, ...]


def state_dir(cwd: Path) -> Path:
    return cwd / STATE_DIR


def read_record(cwd: Path) -> AgentRecord | None:
    path = state_dir(cwd) / STATE_FILE
    try:
        d = json.loads(path.read_text())
        return AgentRecord(int(d["pid"]), d["nomad_addr"], d["consul_addr"], tuple(d.get("argv", ())))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        raise AgentError(f"{path}: not a nomadmesh agent record ({e}); remove it if no agent runs") from None


def is_our_agent(pid: int) -> bool:
    """The pid is alive and its command line is a `nomadmesh agent` (not a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"nomadmesh" in b" ".join(argv) and b"agent" in argv


def _ready(addr: str) -> bool:
    import requests  # here, not at the top: `render` reads STATE_DIR and never needs an HTTP client

    try:
        return requests.get(f"{addr}/v1/status/leader", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def start_agent(cwd: Path, nomad_addr: str, consul_addr: str, nomad_port: int, consul_port: int,
                grpc_port: int | None, bind: str = "127.0.0.1", default_policy: str = "deny",
                dns_port: int = 8600) -> AgentRecord:
    """Start `nomadmesh agent --dev` detached, wait until both APIs answer, record it."""
    d = state_dir(cwd)
    d.mkdir(exist_ok=True)
    argv: tuple[str, ...] = (sys.executable, "-m", "nomadmesh", "agent", "--dev", "--data-dir", str(d / "data"),
                             "--bind", bind, "--nomad-port", str(nomad_port), "--consul-port", str(consul_port),
                             "--default-policy", default_policy, "--dns-port", str(dns_port))
    if grpc_port is not None:  # off unless asked: an xDS TCP port hands out keys to any local user
        argv += ("--grpc-port", str(grpc_port))
    log_path = d / LOG_FILE
    with open(log_path, "ab") as log:
        # A session of its own: the agent outlives this command and ignores the terminal's Ctrl-C.
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    record = AgentRecord(proc.pid, nomad_addr, consul_addr, argv)
    (d / STATE_FILE).write_text(json.dumps(asdict(record), indent=2) + "\n")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (_ready(nomad_addr) and _ready(consul_addr)):
        if proc.poll() is not None:
            (d / STATE_FILE).unlink(missing_ok=True)
            raise AgentError(f"the agent exited with {proc.returncode}; see {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            stop_agent(cwd)
            raise AgentError(f"the agent did not answer within {READY_TIMEOUT_S:.0f}s; see {log_path}")
        time.sleep(0.1)
    return record


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child (a test's `up` and `down` in one process); else just probe.
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            if not is_our_agent(pid):
                return True
        time.sleep(0.05)
    return False


def stop_agent(cwd: Path, timeout_s: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM the recorded agent (it stops its tasks and namespaces), SIGKILL after `timeout_s`;
    remove the record. Returns what happened, for the user."""
    record = read_record(cwd)
    if record is None:
        return "no agent started by `nomadmesh up` here"
    path = state_dir(cwd) / STATE_FILE
    if not is_our_agent(record.pid):
        path.unlink(missing_ok=True)
        return f"agent (pid {record.pid}) was not running"
    os.kill(record.pid, signal.SIGTERM)
    how = "stopped"
    if not _wait_gone(record.pid, timeout_s):
        os.kill(record.pid, signal.SIGKILL)
        _wait_gone(record.pid, 10)
        how = f"killed (no exit {timeout_s:.0f}s after SIGTERM)"
    path.unlink(missing_ok=True)
    return f"agent (pid {record.pid}) {how}"

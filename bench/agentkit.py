"""Shared machinery for the benchmarks that run against a real dev agent (no figures here).

An agent subprocess on free ports with its own CNI bridge, subnet and namespace prefix (so a
benchmark never collides with tests or another agent), deploys through the `nomadmesh deploy`
CLI, Nomad allocation look-ups, /proc readings (CPU, RSS, private memory) and a thread that
enters an allocation's network namespace (setns is per thread for network namespaces).
"""
from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import requests

from nomadmesh.agent.datadir import alloc_root

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' builders
from support.connect_support import free_port  # noqa: F401  (re-exported: mesh_agent imports it here)
from support.net import free_ports

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def wait_until(pred: Callable[[], T], timeout: float, step: float = 0.05, what: str = "condition") -> T:
    """Poll `pred` until it returns something truthy; errors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (requests.RequestException, OSError, KeyError, ValueError, StopIteration):
            pass
        time.sleep(step)
    raise TimeoutError(f"{what} not reached within {timeout}s (last: {last!r})")


def has_leader(addr: str) -> bool:
    return requests.get(f"{addr}/v1/status/leader", timeout=1).ok


def print_figures(figs: dict[str, Any], as_json: bool) -> None:
    """A bench's figures on stdout: one JSON object, or one `name value` line each."""
    print(json.dumps(figs, indent=2) if as_json else "\n".join(f"{k:40} {v}" for k, v in figs.items()))


def rates_arg(text: str) -> tuple[int, ...]:
    """`--rates 500,1000` → (500, 1000)."""
    return tuple(int(r) for r in text.split(","))


def bench_main(doc: str, figures: Callable[..., dict[str, Any]], argv: list[str] | None,
               **options: tuple[Callable[[str], Any], Any]) -> int:
    """A benchmark's command line: `--<option> VALUE` for each `option=(parse, default)` (its
    `_` spelled `-`), plus `--json`; prints `figures(**values)`. `doc` is the module's docstring."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, (parse, default) in options.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=parse, default=default)
    ap.add_argument("--json", action="store_true")
    values = vars(ap.parse_args(argv))
    as_json = values.pop("json")
    print_figures(figures(**values), as_json)
    return 0



def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def bridge_env(tag: str | None = None) -> dict[str, str]:
    """Environment giving one agent its own bridge, subnet and namespace prefix."""
    tag = tag or secrets.token_hex(2)
    return {
        "NOMADMESH_CNI_BRIDGE": f"nmb{tag}",
        "NOMADMESH_CNI_SUBNET": f"10.{150 + int(tag[:2], 16) % 50}.{int(tag[2:], 16)}.0/24",
        "NOMADMESH_NETNS_PREFIX": f"nmb{tag}-",
        # Jobs run `python3`: make it this venv's (Flask, waitress).
        "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@dataclass
class Agent:
    """A dev agent subprocess; `start()` waits until both APIs answer."""

    data_dir: Path
    env: dict[str, str]
    extra_args: tuple[str, ...] = ()
    # Picked together (free_port twice may return the same just-released port; the agent then refuses to start).
    ports: list[int] = field(default_factory=lambda: free_ports(3))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def nomad_port(self) -> int:
        return self.ports[0]

    @property
    def consul_port(self) -> int:
        return self.ports[1]

    @property
    def grpc_port(self) -> int:
        return self.ports[2]

    @property
    def nomad_addr(self) -> str:
        return f"http://127.0.0.1:{self.nomad_port}"

    @property
    def consul_addr(self) -> str:
        return f"http://127.0.0.1:{self.consul_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "agent.log"

    @property
    def gateway(self) -> str:
        """The bridge's address (host-local IPAM gives the subnet's first address)."""
        net = self.env["NOMADMESH_CNI_SUBNET"].split("/")[0].rsplit(".", 1)[0]
        return f"{net}.1"

    def start(self, timeout: float = 30) -> Agent:
        argv = [PYTHON, "-m", "nomadmesh", "agent", "--dev", "--data-dir", str(self.data_dir),
                "--nomad-port", str(self.nomad_port), "--consul-port", str(self.consul_port),
                "--grpc-port", str(self.grpc_port), "--dns-port", "-1", "--log-level", "warning", *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, **self.env})
        for addr in (self.nomad_addr, self.consul_addr):
            wait_until(partial(has_leader, addr), timeout, what=f"agent at {addr}")
        return self

    def stop(self, kill: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a nomadmesh CLI command against this agent."""
        env = {**os.environ, **self.env, "NOMAD_ADDR": self.nomad_addr, "CONSUL_HTTP_ADDR": self.consul_addr}
        return subprocess.run([PYTHON, "-m", "nomadmesh", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)

    def nomad(self, path: str, **params: Any) -> Any:
        r = requests.get(f"{self.nomad_addr}/v1/{path}", params=params, timeout=10)
        r.raise_for_status()
        return r.json()

    def running_alloc(self, job: str) -> dict[str, Any]:
        (stub,) = [a for a in self.nomad(f"job/{job}/allocations")
                   if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]
        return self.nomad(f"allocation/{stub['ID']}")

    def netns(self, alloc: dict[str, Any]) -> str:
        return self.env["NOMADMESH_NETNS_PREFIX"] + alloc["ID"][:8]


def host_port(alloc: dict[str, Any], label: str) -> int:
    return int(next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == label))


def http_get_status(port: int, path: str = "/", conn: http.client.HTTPConnection | None = None) -> int | None:
    """GET 127.0.0.1:`port``path` (on `conn` if given, kept open); the status, or None if it failed."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        if own:
            conn.close()


@contextmanager
def agent_session(extra_args: tuple[str, ...] = ()) -> Iterator[Agent]:
    """An agent in a temporary dir; stopped (tasks, sidecars, namespaces cleaned) at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="nmbench-"))
    agent = Agent(tmp / "data", bridge_env(), extra_args)
    try:
        yield agent.start()
    finally:
        agent.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(alloc_root(tmp / "data", None), ignore_errors=True)  # the default --alloc-dir, in /tmp


# --- /proc --------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def private_mib(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total / 1024


def pids_matching(*markers: str) -> list[int]:
    """Processes whose command line contains every marker (e.g. 'envoy' and an agent's data dir)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(m in cmd for m in markers):
            out.append(int(proc.name))
    return out


def enter_netns(name: str) -> None:
    """Move the calling thread into network namespace `name` (call from a dedicated thread)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        # os.setns exists only from Python 3.12; libc's is the same call.
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)

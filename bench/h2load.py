"""h2load (Debian's nghttp2-client) as the benchmarks' C load generator: run it, read its figures.

A Python client on the same 2 cores measures itself as much as the server; h2load is an event
loop in C, holds a fixed rate (`--rps` per client on a kept-alive connection, `-r` new connections
per second) and logs every request (`--log-file`: start µs, status, µs to the end of the response).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Run:
    seconds: float  # h2load's own "finished in"
    succeeded: int
    failed: int  # failed + errored + timed out
    non_2xx: int
    latencies_s: tuple[float, ...]  # per request, from --log-file (empty if not logged)

    @property
    def per_s(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("h2load") is not None


def parse(out: str) -> tuple[float, int, int, int]:
    """(seconds, succeeded, failed, non-2xx responses) from h2load's summary."""
    finished = re.search(r"finished in ([\d.]+)(ms|s)", out)
    reqs = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (finished and reqs and codes):
        raise RuntimeError(f"h2load output not understood:\n{out[-2000:]}")
    seconds = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    failed = int(reqs[2]) + int(reqs[3]) + int(reqs[4])
    return seconds, int(reqs[1]), failed, int(codes[2]) + int(codes[3]) + int(codes[4])


def start(args: list[str], log: Path | None = None, h1: bool = True) -> subprocess.Popen[str]:
    """h2load with `args` (URIs, -n, -c, --rps, -r ...), started in the background; over HTTP/1.1, or
    with `h1=False` over cleartext HTTP/2 (h2c, prior knowledge: Envoy speaks it, the agent does not)."""
    extra = ["--log-file", str(log)] if log else []
    if h1:
        extra.append("--h1")
    return subprocess.Popen(["h2load", *extra, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def finish(proc: subprocess.Popen[str], log: Path | None = None, timeout: float = 300) -> Run:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"h2load exited {proc.returncode}:\n{out[-2000:]}")
    seconds, ok, failed, non_2xx = parse(out)
    lat: tuple[float, ...] = ()
    if log:
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
        lat = tuple(int(r[2]) / 1e6 for r in rows if r[1].startswith("2"))
    return Run(seconds, ok, failed, non_2xx, lat)



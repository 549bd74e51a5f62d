"""How the suite runs on several pytest-xdist workers (conftest.py wires it in).

Most of the suite's time is waiting (agents starting, health checks passing, Envoy loading its
listeners), so WORKERS workers pay even on two cores. Scheduling is xdist's `loadgroup`:

- A test module whose tests share a module-scoped fixture (one agent, one mesh, one browser for the
  module) is one group, so that fixture is set up once, on one worker, instead of once per worker
  that happens to get one of its tests.
- Tests marked `alone` (load, starvation, benchmarks: they measure or they flood the machine) are
  one group, and each of them also runs with no other test running beside it: every test holds a
  shared lock while it runs, an `alone` test the exclusive one (AloneGate).
- Every other test goes to whichever worker is free.

Heavy groups are handed out first (scheduling order), so no long module starts last and stretches
the run's tail; the unit tier, many short tests, fills the gaps at the end.

A run naming only test files (`pytest tests/unit/test_x.py`) stays in one process: starting the
workers would cost more than they save. `-n 4` asks for them anyway; `-n0` (or `-p no:xdist`) runs
everything in one process, in collection order.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORKERS = 3  # 3, not 4: on two cores the CPU-bound parts (fuzzing, CLI processes) already fill them
ALONE_GROUP = "alone"
SHARED_SCOPES = frozenset({"module", "class", "package"})  # fixtures a group of tests must share
TIER_ORDER = {"e2e": 0, "agent": 1, "unit": 2}  # the expensive tiers are scheduled first


def only_files(args: list[str]) -> bool:
    """The command line names test files or tests only (not the suite, not a folder)."""
    return bool(args) and all(a.split("::")[0].endswith(".py") for a in args)


def group_of(module: str, alone: bool, fixture_scopes: set[str]) -> str | None:
    """The xdist group of a test: `alone`, its module (it shares a module-scoped fixture), or None."""
    if alone:
        return ALONE_GROUP
    if fixture_scopes & SHARED_SCOPES:
        return module
    return None


def schedule_key(tier: str | None, group: str | None) -> tuple[int, int]:
    """Sort key of a test for the scheduler: `alone` tests first, then by tier, grouped tests before
    single ones. Python's sort is stable, so a module's tests stay together and in their order."""
    return (0 if group == ALONE_GROUP else 1 + TIER_ORDER.get(tier or "", len(TIER_ORDER)),
            0 if group else 1)


class AloneGate:
    """A readers-writer lock between the workers of one run, on two files in the run's temp dir.

    A test enters through the turnstile (taken and dropped at once) and holds the room shared; an
    `alone` test holds the turnstile exclusively while it waits for the room, so no new test starts
    meanwhile (flock has no writer preference: without the turnstile it could wait forever)."""

    def __init__(self, run_dir: Path):
        self.turnstile = run_dir / "alone-turnstile.lock"
        self.room = run_dir / "alone-room.lock"

    @contextmanager
    def enter(self, alone: bool) -> Iterator[None]:
        with _opened(self.turnstile) as turnstile, _opened(self.room) as room:
            fcntl.flock(turnstile, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            if not alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(room, fcntl.LOCK_UN)
                if alone:
                    fcntl.flock(turnstile, fcntl.LOCK_UN)


@contextmanager
def _opened(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield fd
    finally:
        os.close(fd)

"""How long-running work (deploy, destroy, up) reports what it is doing. Passed in, never global.

    Progress          the protocol the core calls: begin/end a step per job, allocation counts, notes
    PlainProgress     one line per finished step ("Registering tax ... done"), no ANSI: logs, pipes
    RichProgress      a live table per job on a terminal (rich)
    SilentProgress    nothing, for --json

`make_progress(as_json, stream)` picks one. All three are safe to call from several threads
(deploy watches its jobs in parallel).
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:  # annotations only: rich is imported when a live table is actually drawn
    from rich.table import Table


class Progress(Protocol):
    def begin(self, job: str, action: str) -> None:
        """`action` ("Registering", "Waiting for") on `job` has started."""

    def end(self, job: str, result: str, ok: bool = True) -> None:
        """The step begun last for `job` finished with `result` ("done", "healthy (1/1)")."""

    def counts(self, job: str, placed: int, healthy: int, unhealthy: int, desired: int) -> None:
        """The job's current deployment counts."""

    def note(self, text: str) -> None:
        """A line that belongs to no single job (a warning, the state after Ctrl-C)."""

    def close(self) -> None:
        """No more updates; a live display stops here."""


class SilentProgress:
    def begin(self, job: str, action: str) -> None: ...
    def end(self, job: str, result: str, ok: bool = True) -> None: ...
    def counts(self, job: str, placed: int, healthy: int, unhealthy: int, desired: int) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Row:
    action: str = ""
    result: str = ""
    ok: bool = True
    started: float = field(default_factory=time.monotonic)
    counts: tuple[int, int, int, int] | None = None


class PlainProgress:
    """Whole lines only, written when a step ends: interleaving threads never split a line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stdout  # resolved late: click's CliRunner swaps sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def begin(self, job: str, action: str) -> None:
        with self._lock:
            self._rows[job] = _Row(action)

    def end(self, job: str, result: str, ok: bool = True) -> None:
        with self._lock:
            row = self._rows.get(job) or _Row("")
            self._write(f"{row.action} {job} ... {result}".lstrip())

    def counts(self, job: str, placed: int, healthy: int, unhealthy: int, desired: int) -> None:
        with self._lock:
            row = self._rows.setdefault(job, _Row(""))
            new = (placed, healthy, unhealthy, desired)
            if row.counts != new:
                row.counts = new
                elapsed = time.monotonic() - row.started
                self._write(f"  {job}: placed {placed}/{desired}, healthy {healthy}/{desired}, "
                            f"unhealthy {unhealthy} ({elapsed:.1f}s)")

    def note(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def close(self) -> None: ...


class RichProgress:
    """A rich Live table: one row per job with its step, counts and elapsed time."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=stream or sys.stdout)
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._live = Live(get_renderable=self._table, console=self._console, refresh_per_second=8, transient=False)
        self._live.start()

    def _table(self) -> Table:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold")
        for col in ("job", "step", "placed", "healthy", "unhealthy", "elapsed"):
            table.add_column(col)
        with self._lock:
            rows = list(self._rows.items())
        for job, r in rows:
            placed, healthy, unhealthy, desired = r.counts or (0, 0, 0, 0)
            style = "" if r.ok else "red"
            step = f"{r.action} … {r.result}" if r.result else f"{r.action} …"
            counts = (f"{placed}/{desired}", f"{healthy}/{desired}", str(unhealthy)) if r.counts else ("", "", "")
            table.add_row(job, step, *counts, f"{time.monotonic() - r.started:.1f}s", style=style)
        return table

    def begin(self, job: str, action: str) -> None:
        with self._lock:
            row = self._rows.setdefault(job, _Row())
            row.action, row.result, row.ok = action, "", True

    def end(self, job: str, result: str, ok: bool = True) -> None:
        with self._lock:
            row = self._rows.setdefault(job, _Row())
            row.result, row.ok = result, ok

    def counts(self, job: str, placed: int, healthy: int, unhealthy: int, desired: int) -> None:
        with self._lock:
            self._rows.setdefault(job, _Row()).counts = (placed, healthy, unhealthy, desired)

    def note(self, text: str) -> None:
        self._live.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._live.stop()


def make_progress(as_json: bool = False, stream: TextIO | None = None) -> Progress:
    """Silent for --json, a live table on a terminal, plain lines otherwise."""
    if as_json:
        return SilentProgress()
    out = stream or sys.stdout
    if out.isatty():
        return RichProgress(out)
    return PlainProgress(stream)

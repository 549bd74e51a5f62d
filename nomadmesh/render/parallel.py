"""`fork_map(fn, items)`: a pure function over many items, in forked worker processes when that pays.

Rendering a job to JSON is CPU-bound Python (~1.3 ms of CPU a job, half of it the parse), so many jobs
are spread over the machine's cores. Workers are forked, not spawned: they inherit the parent's
loaded modules, built parser and template environments, and the items themselves (a module
global set just before the fork), so nothing but results crosses a pipe. Forking is only done
where it is safe and worth it:
- on Linux, in a process with a single thread (forking a threaded process can copy a held lock);
- there are at least `min_items` items and two usable cores.
Otherwise it is a plain loop. Results come back in item order; an exception raised for an item
is raised again in the parent, the earliest item's first, exactly as the plain loop would.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MIN_ITEMS = 100  # below this, starting workers costs more than it saves

# What the forked workers run, set in the parent just before the fork and inherited by them.
_task: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fork_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None,
             min_items: int | None = None) -> list[R]:
    """`[fn(item) for item in items]`, computed by up to `workers` (default: the usable cores) forked
    processes when safe and there are at least `min_items` (default `MIN_ITEMS`) items."""
    workers = min(workers or usable_cpus(), len(items))
    if (workers < 2 or len(items) < (MIN_ITEMS if min_items is None else min_items) or threading.active_count() > 1
            or sys.platform != "linux"):  # macOS lists fork, but forking there can crash system libraries
        return [fn(item) for item in items]
    first = fn(items[0])  # in the parent: builds the lazily made parser and templates once, before the fork
    global _task
    _task = (fn, items)
    # Everything alive now is moved out of the collector's sight: a collection in a worker would
    # otherwise touch (and so copy, page by page) the parent's whole heap it shares copy-on-write.
    gc.freeze()
    try:
        # An executor, not a Pool: a worker that dies (killed, out of memory) fails the call with
        # BrokenProcessPool instead of leaving it waiting for a result that never comes.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(_run_chunk, _chunks(1, len(items), workers * 4)))
    finally:
        _task = None
        gc.unfreeze()
    out: list[R] = [first]
    for part in parts:
        for ok, value in part:
            if not ok:
                raise value
            out.append(value)
    return out


def _chunks(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    """`[start, stop)` cut into about `count` contiguous ranges, in order."""
    size = max(1, -(-(stop - start) // count))
    return [(i, min(i + size, stop)) for i in range(start, stop, size)]


def _run_chunk(bounds: tuple[int, int]) -> list[tuple[bool, Any]]:
    """In a worker: fn over one range of the inherited items; an exception is returned, not raised,
    so the parent can raise the earliest item's error whatever order the chunks finish in."""
    assert _task is not None, "fork_map's task is set before its workers are forked"
    fn, items = _task
    results: list[tuple[bool, Any]] = []
    for i in range(*bounds):
        try:
            results.append((True, fn(items[i])))
        except Exception as exc:
            results.append((False, exc))
            break  # the parent stops at the first error; later items in this range do not matter
    return results

"""Bounded polling: wait for a condition instead of sleeping for a guessed time."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import requests

T = TypeVar("T")

# What a condition may raise while the thing it looks at is not there yet (a server not listening,
# a document not written, a key not present); anything else is a bug in the test and propagates.
NOT_YET = (requests.RequestException, OSError, KeyError, IndexError, ValueError, StopIteration)


def wait_until(pred: Callable[[], T], timeout: float = 10.0, what: str = "condition", step: float = 0.05) -> T:
    """Poll `pred` until it returns something truthy and return that; NOT_YET errors count as "not yet".

    Bounded in time; the AssertionError names what was awaited and the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = pred()
            if last:
                return last  # type: ignore[return-value]  # truthy T
        except NOT_YET as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
        time.sleep(step)


def seconds_until(pred: Callable[[], object], timeout: float, what: str = "condition", step: float = 0.002) -> float:
    """Like wait_until, but returns how many seconds it took (for tests that report a figure, never assert it)."""
    start = time.monotonic()
    wait_until(pred, timeout, what, step)
    return time.monotonic() - start

"""Wake asyncio waiters from any thread: how a change made by a worker thread (a state write, a
UI watcher seeing a new index) reaches the blocking queries and event streams of the HTTP loop.

A waiter costs one future, no thread. Waiters may wait on topics (the State's kinds) so that a
write wakes only those that care; `notify` may be called from any thread and resolves each
waiter's future in its own loop through `call_soon_threadsafe`. A waiter that is cancelled (its
client disconnected) simply leaves.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable

ANY = ""  # the topic of waiters that do not name one


Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Wakeups:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Waiter]] = {}

    def notify(self, topics: Iterable[str] = (ANY,)) -> None:
        with self._lock:
            waiting = set().union(*(self._waiting.get(t, ()) for t in topics))
        for loop, future in waiting:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: its waiter is gone with it
                pass

    async def wait_for(self, ready: Callable[[], bool], timeout: float, topics: Iterable[str] = (ANY,)) -> bool:
        """Until `ready()` is true (checked after every wake-up by `notify` of one of `topics`) or
        `timeout` seconds pass; returns `ready()`'s last answer. `ready` must be quick: it runs on
        the event loop."""
        topics = tuple(topics)
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            with self._lock:
                for topic in topics:
                    self._waiting.setdefault(topic, set()).add(entry)
            try:
                # Checked after registering: a change between the check and the wait still wakes us.
                if ready():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(future, remaining)
                except TimeoutError:
                    return ready()
            finally:
                with self._lock:
                    for topic in topics:
                        waiters = self._waiting.get(topic)
                        if waiters is not None:
                            waiters.discard(entry)
                            if not waiters:
                                del self._waiting[topic]

    def __len__(self) -> int:
        """How many waiters wait (each counted once)."""
        with self._lock:
            return len(set().union(*self._waiting.values()))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

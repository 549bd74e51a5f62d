"""One change feed per UI: a few blocking queries shared by every open page.

Each watched read (catalog services, all health checks, service-intentions entries, Nomad
allocations) runs in its own thread as a loop of blocking queries; when any index moves, the feed's
version goes up and every subscriber wakes. So N open pages cost N idle SSE connections and four
upstream queries, not 4·N — this matters on the dev agent, whose HTTP threads are shared with the
APIs. The threads run while someone listens and end within one `wait` after the last one leaves;
a subscriber arriving meanwhile restarts whichever have ended. Subscribers (the SSE streams) wait
on the HTTP loop (`wait_async`, `wait_primed`): the watchers wake them without a thread each.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from nomadmesh.errors import TargetError
from nomadmesh.mesh import intentions as ixn
from nomadmesh.ui.api import ApiClient, Apis
from nomadmesh.wakeups import Wakeups

log = logging.getLogger("nomadmesh.ui")

BLOCK_WAIT_S = 20.0
RETRY_S = 1.0

WATCHED: tuple[tuple[str, str], ...] = (
    ("consul", "/v1/catalog/services"),
    ("consul", "/v1/health/state/any"),
    ("consul", f"/v1/config/{ixn.KIND}"),
    ("nomad", "/v1/allocations"),
)


class ChangeFeed:
    def __init__(self, apis_factory: Callable[[], Apis], wait_s: float = BLOCK_WAIT_S):
        self._apis_factory = apis_factory
        self._wait_s = wait_s
        self._cond = threading.Condition()
        self._version = 0
        self._subscribers = 0
        self._alive: set[str] = set()  # paths whose watcher thread runs
        self._primed: set[str] = set()
        self._wakeups = Wakeups()

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def primed(self) -> bool:
        """True once every watcher holds its first index, so no later change can be missed."""
        with self._cond:
            return len(self._primed) == len(WATCHED)

    def subscribe(self) -> None:
        with self._cond:
            self._subscribers += 1
            # Watchers end one by one after the last subscriber leaves: restart each one that has.
            missing = [(api, path) for api, path in WATCHED if path not in self._alive]
            if missing:
                apis = self._apis_factory()
                for api, path in missing:
                    client = apis.consul if api == "consul" else apis.nomad
                    self._alive.add(path)
                    threading.Thread(target=self._watch, args=(client, path), daemon=True,
                                     name=f"ui-watch{path}").start()

    def unsubscribe(self) -> None:
        with self._cond:
            self._subscribers -= 1

    def wait(self, seen: int, timeout: float) -> int:
        """The current version once it differs from `seen`, or at `timeout`."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen, timeout)
            return self._version

    async def wait_async(self, seen: int, timeout: float) -> int:
        """`wait` on an event loop, holding no thread."""
        await self._wakeups.wait_for(lambda: self.version != seen, timeout)
        return self.version

    async def wait_primed(self, timeout: float) -> bool:
        """Until `primed()` or `timeout`, on an event loop."""
        return await self._wakeups.wait_for(self.primed, timeout)

    def _bump(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()
        self._wakeups.notify()

    def _watch(self, client: ApiClient, path: str) -> None:
        index = 0
        exited = False
        try:
            while True:
                with self._cond:
                    # Decided under the lock that `subscribe` takes, so a new subscriber either
                    # sees this thread still counted (and it keeps going) or starts a new one.
                    if self._subscribers <= 0:
                        self._alive.discard(path)
                        self._primed.discard(path)
                        exited = True
                        return
                try:
                    new = client.wait_index(path, index, self._wait_s)
                except TargetError as e:
                    log.debug("watching %s: %s", path, e)
                    time.sleep(RETRY_S)
                    continue
                if new <= 0:  # an API that gives no index cannot block: poll instead
                    time.sleep(RETRY_S)
                if index == 0:
                    log.debug("watching %s from index %d", path, new)
                    with self._cond:
                        self._primed.add(path)
                        self._cond.notify_all()
                    self._wakeups.notify()
                elif new != index:
                    self._bump()
                # An index that goes backwards (a restarted agent) starts over, as Consul advises.
                index = new if new >= index else 0
        finally:
            if not exited:
                with self._cond:
                    self._alive.discard(path)
                    self._primed.discard(path)

"""nomadmesh.wakeups: asyncio waiters woken from other threads, per topic, and gone when cancelled."""
from __future__ import annotations

import asyncio
import threading

from nomadmesh.wakeups import Wakeups


def test_a_thread_wakes_only_the_waiters_of_its_topic_and_cancelled_ones_leave() -> None:
    async def scenario() -> None:
        wakeups = Wakeups()
        flags = {"kv": False, "job": False}
        kv = asyncio.ensure_future(wakeups.wait_for(lambda: flags["kv"], 30, topics=("kv",)))
        job = asyncio.ensure_future(wakeups.wait_for(lambda: flags["job"], 30, topics=("job", "alloc")))
        while len(wakeups) < 2:
            await asyncio.sleep(0.01)

        def writer() -> None:
            flags["kv"] = True
            wakeups.notify(("kv",))

        threading.Thread(target=writer).start()
        assert await asyncio.wait_for(kv, 10) is True
        assert not job.done() and len(wakeups) == 1
        job.cancel()  # a client that went away
        await asyncio.gather(job, return_exceptions=True)
        assert len(wakeups) == 0
        # A wait that times out answers False; one already satisfied answers at once.
        assert await wakeups.wait_for(lambda: False, 0.05) is False
        assert await wakeups.wait_for(lambda: True, 30) is True

    asyncio.run(scenario())

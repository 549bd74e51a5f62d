"""How the suite is spread over xdist workers (tests/support/parallel.py)."""
from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

from support.parallel import ALONE_GROUP, AloneGate, group_of, only_files, schedule_key
from support.waiting import wait_until

WAIT_S = 10  # a bound for steps that must happen; none is expected to take long


def test_a_module_sharing_a_fixture_is_one_group_and_alone_wins() -> None:
    assert group_of("tests/e2e/test_x.py", False, {"function", "module", "session"}) == "tests/e2e/test_x.py"
    assert group_of("tests/e2e/test_x.py", False, {"function", "session"}) is None
    assert group_of("tests/e2e/test_x.py", True, {"module"}) == ALONE_GROUP


def test_alone_tests_then_expensive_tiers_are_scheduled_first() -> None:
    order = [("unit", None), ("agent", None), ("e2e", None), ("agent", "m"), ("e2e", "m"), ("unit", ALONE_GROUP)]
    assert sorted(order, key=lambda t: schedule_key(*t)) == [
        ("unit", ALONE_GROUP), ("e2e", "m"), ("e2e", None), ("agent", "m"), ("agent", None), ("unit", None)]


def test_only_named_files_run_in_one_process() -> None:
    assert only_files(["tests/unit/test_a.py", "tests/agent/test_b.py::test_c[x]"])
    assert not only_files([])  # the whole suite
    assert not only_files(["tests/unit"])
    assert not only_files(["tests/unit/test_a.py", "tests/e2e"])


def test_an_alone_test_waits_for_running_tests_and_holds_new_ones_off(tmp_path: Path) -> None:
    gate = AloneGate(tmp_path)
    events: list[str] = []
    release_first, alone_waiting, release_alone = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with gate.enter(alone=False):
            events.append("first in")
            release_first.wait(WAIT_S)
            events.append("first out")

    def alone() -> None:
        alone_waiting.set()
        with gate.enter(alone=True):
            events.append("alone in")
            release_alone.wait(WAIT_S)
            events.append("alone out")

    def later() -> None:
        with gate.enter(alone=False):
            events.append("later in")

    threads = [threading.Thread(target=first)]
    threads[0].start()
    wait_for(lambda: "first in" in events)
    threads.append(threading.Thread(target=alone))
    threads[1].start()
    alone_waiting.wait(WAIT_S)
    wait_for(lambda: turnstile_taken(gate))  # the alone test holds the turnstile while it waits
    threads.append(threading.Thread(target=later))
    threads[2].start()
    release_first.set()
    wait_for(lambda: "alone in" in events)
    release_alone.set()
    for t in threads:
        t.join(WAIT_S)
    assert events == ["first in", "first out", "alone in", "alone out", "later in"]


def turnstile_taken(gate: AloneGate) -> bool:
    """Someone holds the turnstile exclusively (a shared lock on it cannot be had now)."""
    fd = os.open(gate.turnstile, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock if it was had
    return False


def wait_for(condition: Callable[[], bool]) -> None:
    wait_until(condition, WAIT_S, step=0.01, what="the gate's next step")


def test_each_worker_picks_ports_in_a_slice_of_its_own_below_the_ephemeral_range(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from support import net

    slices = []
    for n in range(3):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{n}")
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
        slices.append(set(net.worker_range()))
    assert not (slices[0] & slices[1]) and not (slices[1] & slices[2]) and not (slices[0] & slices[2])
    assert all(net.LOW <= p < net.HIGH for s in slices for p in s) and net.HIGH <= 20000  # Nomad's dynamic ports
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert net.worker_range() == range(net.LOW, net.HIGH)

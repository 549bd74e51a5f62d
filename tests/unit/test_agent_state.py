"""The agent's SQLite document store: indexes, check-and-set, blocking waits, persistence."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from nomadmesh.agent.state import CasError, Change, State


def test_every_write_takes_the_next_index(fresh_state: State) -> None:
    first = fresh_state.put("kv", "a", "1")
    second = fresh_state.put("kv", "a", "2")
    assert second.modify_index == first.modify_index + 1
    assert second.create_index == first.create_index
    assert fresh_state.kind_index("kv") == second.modify_index
    assert fresh_state.get("kv", "a").value == "2"


def test_cas_zero_means_absent_and_n_means_modify_index(fresh_state: State) -> None:
    rec = fresh_state.put("kv", "k", "v", cas=0)
    with pytest.raises(CasError):
        fresh_state.put("kv", "k", "w", cas=0)
    with pytest.raises(CasError):
        fresh_state.put("kv", "k", "w", cas=rec.modify_index + 5)
    assert fresh_state.put("kv", "k", "w", cas=rec.modify_index).value == "w"
    assert fresh_state.get("kv", "k").value == "w"


def test_failed_transaction_writes_nothing(fresh_state: State) -> None:
    before = fresh_state.index

    def transaction_with_a_failing_cas() -> None:
        with fresh_state.write() as txn:
            txn.put("kv", "one", 1)
            txn.put("kv", "two", 2, cas=99)

    with pytest.raises(CasError):  # raised through the transaction's exit, which must roll "one" back
        transaction_with_a_failing_cas()
    assert fresh_state.get("kv", "one") is None
    assert fresh_state.index == before


def test_prefix_listing_treats_like_wildcards_literally(fresh_state: State) -> None:
    for key in ("a%b/x", "axb/y", "a_b/z", "a%b"):
        fresh_state.put("kv", key, key)
    assert [r.key for r in fresh_state.records("kv", "a%b")] == ["a%b", "a%b/x"]


def test_wait_returns_when_the_kind_changes(fresh_state: State) -> None:
    index = fresh_state.put("job", "j", {}).modify_index
    threading.Timer(0.2, lambda: fresh_state.put("job", "j", {"v": 2})).start()
    start = time.monotonic()
    assert fresh_state.wait(["job"], index, timeout=5) == index + 1
    assert time.monotonic() - start < 4


def test_wait_ignores_other_kinds_until_timeout(fresh_state: State) -> None:
    index = fresh_state.put("job", "j", {}).modify_index
    fresh_state.put("kv", "other", 1)
    assert fresh_state.wait(["job"], index, timeout=0.2) == index


def test_state_survives_reopen(tmp_path: Path) -> None:
    state = State(tmp_path / "s.db")
    state.put("config", "service-intentions/tax", {"Name": "tax"})
    index = state.index
    state.close()
    again = State(tmp_path / "s.db")
    assert again.get("config", "service-intentions/tax").value == {"Name": "tax"}
    assert again.index == index
    again.close()


def test_commit_listeners_see_each_committed_write_with_before_and_after(tmp_path: Path) -> None:
    state = State(tmp_path / "s.db")
    seen: list[tuple[int, list[Change], str | None]] = []
    state.on_commit(lambda index, changes, named: seen.append((index, changes, named)))
    first = state.put("job", "a", {"v": 1})
    with state.write() as txn:
        txn.put("job", "a", {"v": 2})
        txn.delete("job", "missing")  # nothing deleted: no change
        txn.event_type = "Named"

    def failing_write() -> None:
        with state.write() as txn:
            txn.put("job", "b", {"v": 1})
            raise RuntimeError("rolled back: no listener call")

    with pytest.raises(RuntimeError):
        failing_write()
    state.delete("job", "a")
    assert seen == [
        (first.modify_index, [Change("job", "a", None, {"v": 1})], None),
        (first.modify_index + 1, [Change("job", "a", {"v": 1}, {"v": 2})], "Named"),
        (first.modify_index + 2, [Change("job", "a", {"v": 2}, None)], None),
    ]
    state.close()

"""Pure tests of Nomad's restart policy, Go duration text and the Nomad shapes of events and state."""
from __future__ import annotations

import random

import pytest

from nomadmesh.agent.runtime.events import TaskEvent, TaskState, rfc3339
from nomadmesh.agent.runtime.restarts import NS, RestartPolicy, RestartTracker
from nomadmesh.durations import go_duration

MIN = 60 * NS


@pytest.mark.parametrize("ns,text", [(0, "0s"), (30 * MIN, "30m0s"), (15 * NS, "15s"), (1500 * NS // 1000, "1.5s"),
                                     (250 * NS // 1000, "250ms"), (25 * 3600 * NS, "25h0m0s"), (90 * NS, "1m30s")])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_defaults_by_job_type_and_from_nomad() -> None:
    assert RestartPolicy.default("service") == RestartPolicy(2, 30 * MIN, 15 * NS, "fail")
    assert RestartPolicy.default("batch") == RestartPolicy(3, 24 * 60 * MIN, 15 * NS, "fail")
    p = RestartPolicy.from_nomad({"Attempts": 5, "Interval": MIN, "Delay": NS, "Mode": "delay"})
    assert p == RestartPolicy(5, MIN, NS, "delay")
    assert RestartPolicy.from_nomad({"Attempts": 0}, "batch") == RestartPolicy(0, 24 * 60 * MIN, 15 * NS, "fail")
    assert RestartPolicy.from_nomad(None) == RestartPolicy.default()


def test_attempts_within_interval_then_fail() -> None:
    t = RestartTracker(RestartPolicy(2, 10 * MIN, NS, "fail"), "service", now_ns=0, rng=random.Random(1))
    d1 = t.on_exit(1, now_ns=1 * NS)
    d2 = t.on_exit(1, now_ns=2 * NS)
    d3 = t.on_exit(1, now_ns=3 * NS)
    assert (d1.action, d2.action, d3.action) == ("restart", "restart", "fail")
    assert NS <= d1.delay_ns <= NS * 5 // 4  # delay plus at most 25% jitter
    assert d3.reason == 'Exceeded allowed attempts 2 in interval 10m0s and mode is "fail"'


def test_count_resets_after_the_interval() -> None:
    t = RestartTracker(RestartPolicy(1, MIN, NS, "fail"), "service", now_ns=0)
    assert t.on_exit(1, now_ns=NS).action == "restart"
    assert t.on_exit(1, now_ns=MIN + 2 * NS).action == "restart"  # new window
    assert t.on_exit(1, now_ns=MIN + 3 * NS).action == "fail"


def test_delay_mode_waits_for_the_window_end() -> None:
    t = RestartTracker(RestartPolicy(1, MIN, NS, "delay"), "service", now_ns=0)
    t.on_exit(1, now_ns=NS)
    d = t.on_exit(1, now_ns=20 * NS)
    assert (d.action, d.delay_ns, d.reason) == ("restart", 40 * NS, "Exceeded allowed attempts, applying a delay")


def test_success_restarts_services_but_ends_batch() -> None:
    assert RestartTracker(RestartPolicy(2, MIN, NS), "service", 0).on_exit(0, NS).action == "restart"
    assert RestartTracker(RestartPolicy(2, MIN, NS), "batch", 0).on_exit(0, NS).action == "terminated"
    assert RestartTracker(RestartPolicy(0, MIN, NS), "batch", 0).on_exit(0, NS).action == "terminated"
    assert RestartTracker(RestartPolicy(0, MIN, NS), "service", 0).on_exit(0, NS).action == "fail"
    assert RestartTracker(RestartPolicy(2, MIN, NS), "batch", 0).on_exit(None, NS).action == "restart"


def test_nomad_shapes() -> None:
    assert rfc3339(None) == "0001-01-01T00:00:00Z"
    assert rfc3339(1_700_000_000_123_400_000) == "2023-11-14T22:13:20.1234Z"
    assert rfc3339(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    e = TaskEvent("Terminated", "Exit Code: 137, Signal: 9", time_ns=5, exit_code=137, signal=9).to_nomad()
    assert (e["Type"], e["Time"], e["ExitCode"], e["Signal"], e["Details"]["exit_code"]) == (
        "Terminated", 5, 137, 9, "137")
    st = TaskState(state="running", restarts=1, started_at_ns=1_700_000_000_000_000_000,
                   events=(TaskEvent("Started", "x", 1),))
    n = st.to_nomad()
    assert n["State"] == "running" and n["Restarts"] == 1 and n["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert n["StartedAt"] == "2023-11-14T22:13:20Z" and n["Events"][0]["Type"] == "Started"

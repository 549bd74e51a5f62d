"""Nomad's reschedule policy arithmetic (scheduling/reschedule.py): delays, eligibility, tracker."""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.scheduling import reschedule
from nomadmesh.agent.scheduling.reconcile import reconcile
from nomadmesh.jobspec.canonical import default_reschedule

S = 1_000_000_000
T0 = 1_800_000_000 * S  # a fixed clock


def failed_alloc(policy: dict[str, Any] | None, events: list[tuple[int, int]] = (), failed_at: int = T0,
                 aid: str = "a1") -> dict[str, Any]:
    """A failed allocation of version 0; `events`: (reschedule time, delay) of earlier reschedules."""
    return {
        "ID": aid, "NodeID": "n1", "Name": "web.web[0]", "TaskGroup": "web", "JobVersion": 0, "CreateIndex": 5,
        "DesiredStatus": "run", "ClientStatus": "failed", "ModifyTime": failed_at, "DeploymentID": "",
        "TaskStates": {"t": {"State": "dead", "Failed": True, "FinishedAt": failed_at}},
        "RescheduleTracker": {"Events": [{"RescheduleTime": t, "Delay": d, "PrevAllocID": "x", "PrevNodeID": "n1"}
                                         for t, d in events]} if events else None,
        "Job": {"ID": "web", "Version": 0, "TaskGroups": [{"Name": "web", "Count": 1, "ReschedulePolicy": policy}]},
    }


def test_service_default_is_exponential_from_30s_capped_at_an_hour_and_unlimited() -> None:
    policy = default_reschedule("service")
    assert reschedule.next_reschedule_time(failed_alloc(policy)) == (T0 + 30 * S, True)
    # After reschedules with delays 30s, 60s the next is 120s; it never exceeds an hour.
    events = [(T0 - 100 * S, 30 * S), (T0 - 50 * S, 60 * S)]
    assert reschedule.next_delay(failed_alloc(policy, events)) == 120 * S
    capped = [(T0 - 10 * S, 3000 * S)]
    assert reschedule.next_delay(failed_alloc(policy, capped)) == 3600 * S
    # Ran longer than the cap since its last reschedule: back to the initial delay.
    assert reschedule.next_delay(failed_alloc(policy, [(T0 - 7200 * S, 3000 * S)])) == 30 * S
    many = [(T0 - i * S, 3600 * S) for i in range(50, 0, -1)]
    assert reschedule.next_reschedule_time(failed_alloc(policy, many))[1] is True


def test_batch_default_is_one_attempt_in_24h_after_5s() -> None:
    policy = default_reschedule("batch")
    assert reschedule.next_reschedule_time(failed_alloc(policy)) == (T0 + 5 * S, True)
    # One reschedule an hour ago: spent. One 25 hours ago: outside the interval, allowed again.
    assert reschedule.next_reschedule_time(failed_alloc(policy, [(T0 - 3600 * S, 5 * S)]))[1] is False
    assert reschedule.next_reschedule_time(failed_alloc(policy, [(T0 - 25 * 3600 * S, 5 * S)]))[1] is True


def test_fibonacci_sums_the_last_two_delays() -> None:
    policy = {"Attempts": 0, "Interval": 0, "Delay": 5 * S, "DelayFunction": "fibonacci", "MaxDelay": 60 * S,
              "Unlimited": True}
    assert reschedule.next_delay(failed_alloc(policy, [(T0 - 9 * S, 5 * S)])) == 5 * S
    assert reschedule.next_delay(failed_alloc(policy, [(T0 - 9 * S, 5 * S), (T0 - 8 * S, 10 * S)])) == 15 * S
    assert reschedule.next_delay(failed_alloc(policy, [(T0 - 9 * S, 40 * S), (T0 - 8 * S, 50 * S)])) == 60 * S


def test_not_failed_or_stopping_or_without_policy_is_never_rescheduled() -> None:
    policy = default_reschedule("service")
    for change in ({"ClientStatus": "complete"}, {"DesiredStatus": "stop"}):
        assert reschedule.next_reschedule_time({**failed_alloc(policy), **change})[1] is False
    assert reschedule.next_reschedule_time(failed_alloc(None))[1] is False
    disabled = {"Attempts": 0, "Interval": 0, "Delay": 5 * S, "DelayFunction": "constant", "MaxDelay": 0,
                "Unlimited": False}
    assert reschedule.next_reschedule_time(failed_alloc(disabled))[1] is False


def test_replacement_tracker_keeps_recent_events_and_adds_this_one() -> None:
    limited = {"Attempts": 3, "Interval": 600 * S, "Delay": 5 * S, "DelayFunction": "constant", "MaxDelay": 0,
               "Unlimited": False}
    prev = failed_alloc(limited, [(T0 - 900 * S, 5 * S), (T0 - 60 * S, 5 * S)])
    events = reschedule.tracker_for_replacement(prev, T0)["Events"]
    assert [e["RescheduleTime"] for e in events] == [T0 - 60 * S, T0]
    assert events[-1] == {"RescheduleTime": T0, "PrevAllocID": "a1", "PrevNodeID": "n1", "Delay": 5 * S}
    unlimited = failed_alloc(default_reschedule("service"), [(T0 - i * S, 30 * S) for i in range(9, 0, -1)])
    assert len(reschedule.tracker_for_replacement(unlimited, T0)["Events"]) == 6  # the last 5 + this one


def test_reconcile_reschedules_now_later_or_not_at_all() -> None:
    alloc = failed_alloc(default_reschedule("batch"))
    job = alloc["Job"]
    same = lambda _old, _new: "inplace"  # noqa: E731
    assert reconcile(job, [alloc], same, now=T0)["web"].reschedule_later == [("a1", T0 + 5 * S)]
    assert reconcile(job, [alloc], same, now=T0 + 5 * S)["web"].reschedule_now == [("a1", 0)]
    assert reconcile(job, [alloc], same, now=T0 + 5 * S)["web"].place == []
    # Held back while its deployment runs; never when the attempts are spent.
    held = dict(alloc, DeploymentID="d1")
    assert reconcile(job, [held], same, now=T0 + 5 * S, active_deployments={"d1"})["web"].ignore == 1
    spent = failed_alloc(default_reschedule("batch"), [(T0 - 60 * S, 5 * S)])
    plan = reconcile(job, [spent], same, now=T0 + 5 * S)["web"]
    assert (plan.reschedule_now, plan.reschedule_later, plan.ignore) == ([], [], 1)


def test_reschedule_blocks_nomad_refuses_are_refused_with_its_words() -> None:
    from nomadmesh.jobspec.validate import _reschedule

    ok = {"Attempts": 1, "Interval": 3600 * S, "Delay": 5 * S, "DelayFunction": "constant", "MaxDelay": 0,
          "Unlimited": False}
    assert _reschedule(ok) == [] and _reschedule(default_reschedule("service")) == []
    assert _reschedule(default_reschedule("batch")) == []
    assert _reschedule(dict(ok, Attempts=0, Delay=1)) == []  # disabled: not checked, as in Nomad
    assert _reschedule(dict(ok, Delay=1 * S)) == ["Delay cannot be less than 5s (got 1s)"]
    assert _reschedule(dict(ok, DelayFunction="linear", MaxDelay=60 * S)) == [
        'Invalid delay function "linear", must be one of ["constant" "exponential" "fibonacci"]']
    assert _reschedule(dict(ok, Interval=10 * S)) == ["Interval cannot be less than 15s (got 10s)"]
    assert _reschedule(dict(ok, Attempts=10, Interval=30 * S)) == [
        'Nomad can only make 6 attempts in 30s with initial delay 5s and delay function "constant"',
        "Set the interval to at least 50s to accommodate 10 attempts"]
    assert "If Attempts >0, Unlimited cannot also be set to true" in _reschedule(dict(ok, Unlimited=True))
    assert _reschedule(dict(ok, DelayFunction="exponential", MaxDelay=4 * S)) == [
        "Max Delay cannot be less than 5s (got 5s)", "Max Delay cannot be less than Delay 5s (got 4s)"]

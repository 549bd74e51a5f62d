"""Nomad's reschedule policy for failed allocations, for one node. Pure.

A failed allocation of the job's current version is replaced when its task group's
ReschedulePolicy allows it, after a delay that grows with the delay function:

  * next_delay(): `Delay` for the first attempt; then constant, doubled (exponential) or the sum
    of the last two (fibonacci), capped at `MaxDelay`, and back to `Delay` once the allocation ran
    longer than the cap since its last reschedule (Nomad's Allocation.NextDelay);
  * eligible: `Unlimited`, or fewer than `Attempts` reschedules within `Interval` before the
    failure (RescheduleTracker.rescheduleInfo);
  * due within RESCHEDULE_WINDOW_NS of now: replaced now; later: a follow-up evaluation waits
    until then (`WaitUntil`, "created for delayed rescheduling").

The replacement carries `PreviousAllocation` and a `RescheduleTracker` whose events are the
previous allocation's (those within the interval, or the last five when unlimited) plus this one.
Facts from Nomad's nomad/structs (Allocation.NextRescheduleTime, NextDelay) and scheduler
(reconcile_util.go, generic_sched.go updateRescheduleTracker).
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

RESCHEDULE_WINDOW_NS = 1_000_000_000  # Nomad's rescheduleWindowSize: "now" means within 1 s
MAX_PAST_RESCHEDULE_EVENTS = 5
DESC_RESCHEDULED = "alloc was rescheduled because it failed"
DESC_FOLLOWUP = "created for delayed rescheduling"
ZERO_TIME = "0001-01-01T00:00:00Z"


def policy_of(alloc: dict[str, Any]) -> dict[str, Any] | None:
    """The allocation's task group ReschedulePolicy (from the job version it runs)."""
    for tg in (alloc.get("Job") or {}).get("TaskGroups") or []:
        if tg.get("Name") == alloc.get("TaskGroup"):
            return tg.get("ReschedulePolicy")
    return None


def _ns(value: Any) -> int:
    """A time as ns since the epoch: ints as they are, RFC 3339 strings parsed, anything else 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value and not value.startswith("0001-"):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
        except ValueError:
            return 0
    return 0


def last_event_time(alloc: dict[str, Any]) -> int:
    """When the allocation last changed on the client: its tasks' latest FinishedAt, else ModifyTime."""
    finished = [_ns(ts.get("FinishedAt")) for ts in (alloc.get("TaskStates") or {}).values()]
    return max(finished, default=0) or _ns(alloc.get("ModifyTime"))


def _events(alloc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((alloc.get("RescheduleTracker") or {}).get("Events")) or [])


def next_delay(alloc: dict[str, Any]) -> int:
    """How long after its failure the allocation should be replaced, in ns."""
    policy = policy_of(alloc)
    if policy is None:
        return 0
    delay, max_delay = int(policy.get("Delay") or 0), int(policy.get("MaxDelay") or 0)
    events = _events(alloc)
    if not events:
        return delay
    fn = policy.get("DelayFunction")
    if fn == "exponential":
        nxt = int(events[-1]["Delay"]) * 2
    elif fn == "fibonacci" and len(events) >= 2:
        last, before = int(events[-1]["Delay"]), int(events[-2]["Delay"])
        # After a reset to Delay (last == Delay following the ceiling) a new series starts.
        nxt = last if (before == max_delay and last == delay) else last + before
    elif fn == "fibonacci":
        nxt = delay
    else:
        return delay
    if max_delay > 0 and nxt > max_delay:
        nxt = max_delay
        # It ran longer than the ceiling since it was last rescheduled: start over.
        if last_event_time(alloc) - int(events[-1]["RescheduleTime"]) > nxt:
            nxt = delay
    return nxt


def next_reschedule_time(alloc: dict[str, Any]) -> tuple[int, bool]:
    """(when, eligible): when a failed, desired-running allocation may be replaced, and whether
    its policy allows another attempt at all."""
    policy = policy_of(alloc)
    fail_time = last_event_time(alloc)
    if alloc.get("DesiredStatus") == "stop" or alloc.get("ClientStatus") != "failed" or not fail_time \
            or policy is None:
        return 0, False
    delay = next_delay(alloc)
    attempts = int(policy.get("Attempts") or 0)
    unlimited = bool(policy.get("Unlimited"))
    eligible = unlimited or (attempts > 0 and not _events(alloc))
    if attempts > 0 and _events(alloc):
        interval = int(policy.get("Interval") or 0)
        attempted = sum(1 for e in _events(alloc) if fail_time - int(e["RescheduleTime"]) < interval)
        eligible = attempted < attempts and delay < interval
    return fail_time + delay, eligible


def tracker_for_replacement(prev: dict[str, Any], now: int) -> dict[str, Any]:
    """The RescheduleTracker of the allocation that replaces `prev` at `now`."""
    policy = policy_of(prev) or {}
    past = _events(prev)
    if int(policy.get("Attempts") or 0) > 0:
        interval = int(policy.get("Interval") or 0)
        kept = [dict(e) for e in past if interval > 0 and now - int(e["RescheduleTime"]) <= interval]
    else:
        kept = [dict(e) for e in past[-MAX_PAST_RESCHEDULE_EVENTS:]]
    event = {"RescheduleTime": now, "PrevAllocID": prev["ID"], "PrevNodeID": prev.get("NodeID", ""),
             "Delay": next_delay(prev)}
    return {"Events": [*kept, event]}


def wait_until_text(ns: int) -> str:
    """An evaluation's WaitUntil as Nomad's JSON shows a time.Time (RFC 3339, UTC)."""
    if ns <= 0:
        return ZERO_TIME
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")

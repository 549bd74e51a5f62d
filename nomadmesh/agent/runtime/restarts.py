"""Nomad's restart policy as a pure state machine (client/allocrunner/taskrunner/restarts).

The tracker keeps a window that starts at its creation: each exit inside `interval` counts one
attempt, and the count resets when an exit comes after the window ended. Within `attempts` the task
restarts after `delay` plus up to 25% jitter. Beyond it, mode "fail" stops the task as failed and
mode "delay" waits until the window ends, then starts over. Service and system jobs restart even
after exit code 0; batch jobs treat exit 0 as done.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from nomadmesh.durations import go_duration

NS = 1_000_000_000
JITTER = 0.25

# Nomad's defaults by job type (structs.DefaultServiceJobRestartPolicy / DefaultBatchJobRestartPolicy).
_DEFAULTS: dict[str, tuple[int, int, int, str]] = {
    "service": (2, 30 * 60 * NS, 15 * NS, "fail"),
    "system": (2, 30 * 60 * NS, 15 * NS, "fail"),
    "batch": (3, 24 * 3600 * NS, 15 * NS, "fail"),
}


@dataclass(frozen=True)
class RestartPolicy:
    attempts: int = 2
    interval_ns: int = 30 * 60 * NS
    delay_ns: int = 15 * NS
    mode: str = "fail"  # "fail" or "delay"

    @classmethod
    def default(cls, job_type: str = "service") -> RestartPolicy:
        a, i, d, m = _DEFAULTS.get(job_type, _DEFAULTS["service"])
        return cls(a, i, d, m)

    @classmethod
    def from_nomad(cls, block: dict[str, Any] | None, job_type: str = "service") -> RestartPolicy:
        """From a Job JSON `RestartPolicy` ({Attempts, Interval, Delay, Mode}, durations in ns)."""
        base = cls.default(job_type)
        if not block:
            return base
        return cls(
            attempts=int(block.get("Attempts", base.attempts)),
            interval_ns=int(block.get("Interval", base.interval_ns)),
            delay_ns=int(block.get("Delay", base.delay_ns)),
            mode=str(block.get("Mode", base.mode)),
        )


@dataclass(frozen=True)
class Decision:
    action: str  # "restart", "terminated" (done, not failed) or "fail"
    delay_ns: int
    reason: str


REASON_WITHIN_POLICY = "Restart within policy"
REASON_DELAY = "Exceeded allowed attempts, applying a delay"
REASON_NO_RESTARTS = "Policy allows no restarts"
REASON_SUCCESS = "Restart unnecessary as task terminated successfully"


class RestartTracker:
    def __init__(self, policy: RestartPolicy, job_type: str, now_ns: int, rng: random.Random | None = None):
        self.policy = policy
        self.on_success = job_type != "batch"
        self.window_start = now_ns
        self.count = 0
        self._rng = rng or random.Random()

    def on_exit(self, exit_code: int | None, now_ns: int) -> Decision:
        """Decide what follows an exit; `exit_code` None means unknown (counted as a failure)."""
        success = exit_code == 0
        p = self.policy
        if p.attempts == 0:
            if success and not self.on_success:
                return Decision("terminated", 0, REASON_SUCCESS)
            return Decision("fail", 0, REASON_NO_RESTARTS)
        if now_ns > self.window_start + p.interval_ns:
            self.count = 0
            self.window_start = now_ns
        self.count += 1
        if success and not self.on_success:
            return Decision("terminated", 0, REASON_SUCCESS)
        if self.count > p.attempts:
            if p.mode == "fail":
                return Decision("fail", 0, f"Exceeded allowed attempts {p.attempts} in interval "
                                           f"{go_duration(p.interval_ns)} and mode is \"fail\"")
            return Decision("restart", max(0, self.window_start + p.interval_ns - now_ns), REASON_DELAY)
        jitter = int(self._rng.random() * p.delay_ns * JITTER) if p.delay_ns > 0 else 0
        return Decision("restart", p.delay_ns + jitter, REASON_WITHIN_POLICY)

"""One step's verdict from each version's figures over the step's interval. Pure.

    advance   the canary is within the thresholds: go to the next share
    promote   the same at the last step (100%): promote the Nomad deployment
    wait      too few canary requests to judge (say 0 at a 5% step): stay, read again next interval
    rollback  beyond a threshold (the figures that tripped it are given), or no canary traffic for
              `max_idle_steps` intervals in a row: traffic back to stable, deployment failed

The error rate is judged on evidence, never on 0 requests: the canary's 5xx count is compared with
what the threshold allows of max(requests, min_requests) requests. With a 10% threshold and
min_requests 20, 3 failures in 3 requests trip it at once (3 > 2) while 1 in 3 waits for more
(1 <= 2): a few unlucky requests do not roll back a release, a broken version does not wait.
p99 is judged only with at least min_requests requests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nomadmesh.release.options import Thresholds

Action = Literal["advance", "promote", "wait", "rollback"]


@dataclass(frozen=True)
class Figures:
    """One version's figures over an interval, summed over its instances' sidecars."""

    requests: int = 0
    errors: int = 0  # answered 5xx
    p99_s: float | None = None  # None: no latency samples

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def describe(self) -> str:
        p99 = f", p99 {self.p99_s * 1000:.0f} ms" if self.p99_s is not None else ""
        return f"{self.requests} requests, {self.errors} 5xx ({self.error_rate:.1%}){p99}"

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors_5xx": self.errors, "error_rate": round(self.error_rate, 6),
                "p99_ms": round(self.p99_s * 1000, 3) if self.p99_s is not None else None}


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str
    tripped: tuple[str, ...] = ()  # the thresholds the canary went beyond, with its figures


def decide(step: int, is_last: bool, canary: Figures, thresholds: Thresholds, idle_steps: int = 0) -> Verdict:
    """The verdict at `step` (percent to the canary). `idle_steps`: earlier intervals in a row at
    this step that ended in "wait"."""
    tripped = []
    allowed = thresholds.max_error_rate * max(canary.requests, thresholds.min_requests)
    if canary.errors > allowed:
        tripped.append(f"error rate {canary.error_rate:.1%} ({canary.errors} of {canary.requests} requests "
                       f"answered 5xx) > {thresholds.max_error_rate:.2%}")
    enough = canary.requests >= thresholds.min_requests
    if (enough and thresholds.max_p99_s is not None and canary.p99_s is not None
            and canary.p99_s > thresholds.max_p99_s):
        tripped.append(f"p99 {canary.p99_s * 1000:.0f} ms > {thresholds.max_p99_s * 1000:.0f} ms")
    if tripped:
        return Verdict("rollback", f"canary beyond thresholds at {step}%: " + "; ".join(tripped), tuple(tripped))
    if not enough:
        if idle_steps + 1 >= thresholds.max_idle_steps:
            why = (f"no verdict possible: the canary got fewer than {thresholds.min_requests} requests in "
                   f"{idle_steps + 1} intervals at {step}% ({canary.requests} in the last)")
            return Verdict("rollback", why, (why,))
        return Verdict("wait", f"{canary.requests} canary requests at {step}%, fewer than "
                               f"{thresholds.min_requests}: waiting another interval")
    if is_last:
        return Verdict("promote", f"canary within thresholds at {step}%: {canary.describe()}")
    return Verdict("advance", f"canary within thresholds at {step}%: {canary.describe()}")

"""The release's options, parsed and checked before anything is sent. Pure.

    --steps 5,25,50,100     canary shares in percent: whole numbers, rising, ending at 100
    --interval 30s          how long each step runs before its figures are judged (a Go duration)
    --max-error-rate 1%     the canary's highest 5xx share ("1%", "0.5%" or a fraction "0.01")
    --max-p99 250ms         the canary's highest p99 latency (a Go duration); unset: not checked
    --min-requests 20       fewer canary requests than this in a step: no verdict on the error rate yet
    --metrics-url URL       a Prometheus to read the figures from (http:// or https://)

Bad values raise ReleaseUsageError worded `release: --steps: ...` (exit 2).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from nomadmesh.durations import SECOND, DurationError, parse_ns
from nomadmesh.errors import NomadMeshError


class ReleaseUsageError(NomadMeshError):
    """A release option that cannot be used; nothing was sent."""

    exit_code = 2


@dataclass(frozen=True)
class Thresholds:
    max_error_rate: float = 0.01
    max_p99_s: float | None = None
    min_requests: int = 20  # below this a step's error *rate* says little: wait for more (see decide.py)
    max_idle_steps: int = 5  # intervals in a row without min_requests canary requests before giving up


@dataclass(frozen=True)
class ReleaseOptions:
    steps: tuple[int, ...] = (5, 25, 50, 100)
    interval_s: float = 30.0
    thresholds: Thresholds = field(default_factory=Thresholds)


def _bad(option: str, message: str) -> ReleaseUsageError:
    return ReleaseUsageError(f"release: {option}: {message}")


def parse_steps(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",")]
    steps = []
    for p in parts:
        if not p.isdigit() or not 1 <= int(p) <= 100:
            raise _bad("--steps", f"{p!r} in {text!r} is not a whole percentage from 1 to 100")
        steps.append(int(p))
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise _bad("--steps", f"{text!r} must rise step by step (e.g. 5,25,50,100)")
    if steps[-1] != 100:
        raise _bad("--steps", f"{text!r} must end at 100: the canary takes all traffic before it is promoted")
    return tuple(steps)


def parse_duration_s(option: str, text: str) -> float:
    try:
        ns = parse_ns(text.strip())
    except DurationError as e:
        raise _bad(option, str(e)) from None
    if ns <= 0:
        raise _bad(option, f"{text!r} must be longer than 0")
    return ns / SECOND


def parse_rate(text: str) -> float:
    raw = text.strip()
    try:
        rate = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        rate = math.nan
    if math.isnan(rate) or not 0 <= rate <= 1:
        raise _bad("--max-error-rate", f"{text!r} is not a share: a percentage (\"1%\") or a fraction from 0 to 1")
    return rate


def parse_metrics_url(text: str) -> str:
    """A Prometheus base URL (`http://prometheus:9090`), without a trailing slash."""
    url = text.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise _bad("--metrics-url", f"{text!r} is not an http:// or https:// URL of a Prometheus server")
    return url


def parse_options(steps: str = "5,25,50,100", interval: str = "30s", max_error_rate: str = "1%",
                  max_p99: str | None = None, min_requests: int = 20) -> ReleaseOptions:
    if min_requests < 1:
        raise _bad("--min-requests", f"{min_requests} must be at least 1")
    return ReleaseOptions(
        steps=parse_steps(steps),
        interval_s=parse_duration_s("--interval", interval),
        thresholds=Thresholds(max_error_rate=parse_rate(max_error_rate),
                              max_p99_s=parse_duration_s("--max-p99", max_p99) if max_p99 is not None else None,
                              min_requests=min_requests),
    )

"""Go duration strings ("10s", "1m30s", "500ms") to the integer nanoseconds Nomad's JSON API uses."""
from __future__ import annotations

from nomadmesh.durations import DurationError, parse_ns
from nomadmesh.errors import RenderError


def duration_ns(text: str) -> int:
    """A non-negative Go duration in nanoseconds ("0" is allowed, as in Go); RenderError otherwise."""
    try:
        ns = parse_ns(text)
    except DurationError:
        ns = -1
    if ns < 0:
        raise RenderError(f"{text!r} is not a duration like '10s', '5m' or '1h30m'")
    return ns

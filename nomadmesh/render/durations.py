"""Go duration strings ("10s", "1m30s", "500ms") to the integer nanoseconds Nomad's JSON API uses."""
from __future__ import annotations

import re
from decimal import Decimal

from nomadmesh.errors import RenderError

# Go's time.ParseDuration units.
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def duration_ns(text: str) -> int:
    """Parse a Go duration string (unsigned) into nanoseconds; "0" is allowed like in Go."""
    if text == "0":
        return 0
    pos, total = 0, Decimal(0)
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise RenderError(f"{text!r} is not a duration like '10s', '5m' or '1h30m'")
    return int(total)

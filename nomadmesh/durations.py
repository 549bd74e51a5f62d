"""Go duration strings ("10s", "1h30m", "2.5s", "-5s") -> integer nanoseconds, as Go's time.ParseDuration.

The one parser for the whole code base: the definitions (spec), the renderer and its read-back, the
jobspec parser and the dev agent's HTTP layer all call `parse_ns` and only add their own policy
on top (a narrower syntax, no negatives, their own error text). Nomad and Consul parse every
duration with time.ParseDuration, so matching it exactly means we accept and refuse what they do:

    [-+]?([0-9]*(\\.[0-9]*)?[a-z]+)+     units ns, us, µs (U+00B5), μs (U+03BC), ms, s, m, h
    "0" (and "-0", "+0") is the only number allowed without a unit; "" is invalid;
    fractions are converted through float64 and truncated, as Go does (exact for every unit up to h);
    results outside int64 nanoseconds (about ±292 years) are invalid.

Error texts are Go's (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
`time: unknown unit "d" in duration "1d"`), with Go's quoting.
"""
from __future__ import annotations

import functools

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

UNITS: dict[str, int] = {
    "ns": NS, "us": US, "\u00b5s": US, "\u03bcs": US, "ms": MS, "s": SECOND, "m": MINUTE, "h": HOUR,
}

_MAX = 1 << 63  # magnitudes are accumulated unsigned, as in Go; the sign decides the final limit


class DurationError(ValueError):
    """Not a Go duration; the message is Go's own."""


@functools.lru_cache(maxsize=1024)  # the same few texts ("2s", "10s") come back in every job
def parse_ns(text: str) -> int:
    """Go's time.ParseDuration: the duration in nanoseconds, or DurationError with Go's message."""
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {go_quote(text)}")
    total = 0
    while s:
        if not (s[0] == "." or (s[0].isascii() and s[0].isdigit())):
            raise DurationError(f"time: invalid duration {go_quote(text)}")
        whole, s, consumed_whole = _leading_int(s, text)
        fraction, scale, consumed_fraction = 0, 1.0, False
        if s[:1] == ".":
            fraction, scale, s, consumed_fraction = _leading_fraction(s[1:])
        if not consumed_whole and not consumed_fraction:  # ".s", "-.s"
            raise DurationError(f"time: invalid duration {go_quote(text)}")
        end = 0
        while end < len(s) and not (s[end] == "." or (s[end].isascii() and s[end].isdigit())):
            end += 1
        if end == 0:
            raise DurationError(f"time: missing unit in duration {go_quote(text)}")
        unit_name, s = s[:end], s[end:]
        unit = UNITS.get(unit_name)
        if unit is None:
            raise DurationError(f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(text)}")
        if whole > _MAX // unit:
            raise DurationError(f"time: invalid duration {go_quote(text)}")
        value = whole * unit
        if fraction > 0:
            # Go: float64 keeps this nanosecond-exact for fractions of up to an hour.
            value += int(float(fraction) * (float(unit) / scale))
            if value > _MAX:
                raise DurationError(f"time: invalid duration {go_quote(text)}")
        total += value
        if total > _MAX:
            raise DurationError(f"time: invalid duration {go_quote(text)}")
    if negative:
        return -total
    if total > _MAX - 1:
        raise DurationError(f"time: invalid duration {go_quote(text)}")
    return total


def _leading_int(s: str, original: str) -> tuple[int, str, bool]:
    """The run of digits at the start of s (Go's leadingInt: an overflow is an invalid duration)."""
    i, value = 0, 0
    while i < len(s) and s[i].isascii() and s[i].isdigit():
        if value > _MAX // 10:
            raise DurationError(f"time: invalid duration {go_quote(original)}")
        value = value * 10 + int(s[i])
        if value > _MAX:
            raise DurationError(f"time: invalid duration {go_quote(original)}")
        i += 1
    return value, s[i:], i > 0


def _leading_fraction(s: str) -> tuple[int, float, str, bool]:
    """The digits after a '.': value and scale (Go's leadingFraction: digits past int64's precision
    are consumed and ignored, never an error)."""
    i, value, scale, overflow = 0, 0, 1.0, False
    while i < len(s) and s[i].isascii() and s[i].isdigit():
        if not overflow:
            if value > (_MAX - 1) // 10:
                overflow = True
            else:
                shifted = value * 10 + int(s[i])
                if shifted > _MAX:
                    overflow = True
                else:
                    value, scale = shifted, scale * 10
        i += 1
    return value, scale, s[i:], i > 0


def go_quote(s: str) -> str:
    """Go's time.quote: double quotes, `"` and `\\` escaped, non-ASCII and control bytes as \\xNN."""
    out = ['"']
    for ch in s:
        if ord(ch) >= 0x80 or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


def go_duration(ns: int) -> str:
    """Format nanoseconds like Go's time.Duration.String() ("30m0s", "1.5s", "250ms"): the one
    formatter, for messages that quote durations as Nomad and Consul do."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    h, rem = divmod(ns, HOUR)
    m, rem = divmod(rem, MINUTE)
    s = _trim(rem / SECOND)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")

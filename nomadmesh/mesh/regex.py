"""Would Envoy accept this regular expression? Pure, no I/O.

Envoy's `safe_regex` matchers are RE2, compiled with RE2's default options, and Envoy also refuses
a regex whose compiled program is larger than `re2.max_program_size.error_level` (100 by default):
`a{100}` is valid RE2 but a 104-instruction program, and Envoy NACKs the whole resource carrying it.
We compile with the same engine (the `google-re2` package) so a pattern that passes here is one
Envoy loads. Program sizes are the wheel's RE2 count, which can be a few instructions above the one
in Envoy's RE2 build for character classes (`x[^/]+b…`: 104 here, under 100 in Envoy 1.40): the
check is then stricter than Envoy, never looser in what we measured; and what still slips through
is served fail-closed (agent/connect/failclosed.py).
"""
from __future__ import annotations

import re2

ENVOY_MAX_PROGRAM_SIZE = 100  # Envoy's default error-level threshold for RE2 program size

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the caller reports the error; RE2 would also print it to stderr


def regex_problem(pattern: str) -> str | None:
    """Why Envoy would refuse `pattern`, or None if it loads."""
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as e:
        detail = e.args[0] if e.args else str(e)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"invalid RE2 regular expression: {detail}"
    size = compiled.programsize
    if size > ENVOY_MAX_PROGRAM_SIZE:
        return (f"RE2 program size of {size} > max program size of {ENVOY_MAX_PROGRAM_SIZE} "
                f"that Envoy accepts; simplify the regular expression")
    return None

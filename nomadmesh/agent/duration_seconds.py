"""Durations as the agent's APIs take them, in seconds: the Consul half (check intervals, service
definitions) and the HTTP views (blocking queries' `wait`) share this one parser."""
from __future__ import annotations

import re

from nomadmesh.durations import DurationError, parse_ns


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("5s", "1m30s", "300ms") in seconds; a bare number is seconds,
    as Consul's and Nomad's `wait` parsers accept it."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return float(text)
    try:
        ns = parse_ns(text)  # nomadmesh.durations: Go's own rules
    except DurationError:
        ns = -1
    if ns < 0:
        raise ValueError(f"invalid duration {text!r}")
    return ns / 1e9

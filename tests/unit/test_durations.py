"""nomadmesh.durations.parse_ns: Go's time.ParseDuration, the one duration parser of the code base."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from nomadmesh.durations import UNITS, DurationError, go_duration, go_quote, parse_ns

S = 1_000_000_000


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("-0", 0), ("+0", 0), ("0s", 0),
    ("5s", 5 * S), ("+5s", 5 * S), ("-5s", -5 * S),
    ("1h30m", 90 * 60 * S), ("1h1m1s1ms1us1ns", 3661 * S + 1_001_001),
    ("2.5s", 2_500_000_000), (".5s", S // 2), ("1.s", S), ("1.004s", 1_004_000_000),
    ("100.00100s", 100_001_000_000),
    ("1.5s", 1_500_000_000), ("1h2m", 62 * 60 * S), ("-1s", -S), ("300ms", 300_000_000),
    ("1µs", 1_000), ("1μs", 1_000), ("1us", 1_000),  # micro sign U+00B5 and Greek mu U+03BC
    ("0.3333333333333333333h", 20 * 60 * S),  # float64 math, as Go
    ("1.0000000001s", S),  # below a nanosecond: truncated, as Go
    ("0.100000000000000000000h", 6 * 60 * S),  # fraction digits past int64 are ignored
    ("9223372036854775807ns", 2**63 - 1), ("-9223372036854775808ns", -(2**63)),
    ("2562047h47m16.854775807s", 2**63 - 1), ("-2562047h47m16.854775808s", -(2**63)),
])
def test_parses_what_go_parses(text: str, ns: int) -> None:
    assert parse_ns(text) == ns


@pytest.mark.parametrize(("text", "message"), [
    ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'),
    ("s", 'time: invalid duration "s"'),
    (".s", 'time: invalid duration ".s"'),
    ("-.s", 'time: invalid duration "-.s"'),
    ("3", 'time: missing unit in duration "3"'),
    ("1.5.5s", 'time: missing unit in duration "1.5.5s"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1 s", 'time: unknown unit " s" in duration "1 s"'),
    (" 1s", 'time: invalid duration " 1s"'),  # Go does not trim
    ("1sm", 'time: unknown unit "sm" in duration "1sm"'),
    ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
    ("99999999999999999999s", 'time: invalid duration "99999999999999999999s"'),
    ('"1"s', 'time: invalid duration "\\"1\\"s"'),
    ("1é", 'time: unknown unit "\\xc3\\xa9" in duration "1\\xc3\\xa9"'),
])
def test_refuses_what_go_refuses_with_gos_message(text: str, message: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_ns(text)
    assert str(caught.value) == message


def test_go_quote_escapes_like_go() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\n") == '"\\x0a"'


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(UNITS))), min_size=1, max_size=5),
       st.sampled_from(["", "+", "-"]))
def test_a_sequence_of_whole_parts_is_their_sum(parts: list[tuple[int, str]], sign: str) -> None:
    text = sign + "".join(f"{n}{unit}" for n, unit in parts)
    total = sum(n * UNITS[unit] for n, unit in parts)
    if total > 2**63 - (0 if sign == "-" else 1):  # beyond Go's int64 nanoseconds (-2**63 still fits)
        with pytest.raises(DurationError):
            parse_ns(text)
        return
    assert parse_ns(text) == (-total if sign == "-" else total)


@given(st.integers(0, 10**9 - 1))
def test_a_fraction_of_a_second_is_exact_to_the_nanosecond(nanos: int) -> None:
    assert parse_ns(f"1.{nanos:09d}s") == S + nanos


# Every caller goes through parse_ns and only adds its own policy; before, four parsers disagreed
# (no "+", no Greek mu, float rounding that overflowed int64 near its limit).
@pytest.mark.parametrize("text", ["+1s", "500000μs", "1h0.5s", "1.9ns", "2562047h47m16.854775807s"])
def test_every_caller_agrees_with_go(text: str) -> None:
    from nomadmesh.agent.http.common import parse_duration as agent_wait_seconds
    from nomadmesh.jobspec.values import parse_duration as jobspec_ns

    expected = parse_ns(text)
    assert jobspec_ns(text) == expected
    assert agent_wait_seconds(text) == expected / 1e9


def test_the_definitions_take_what_go_takes_and_refuse_negatives() -> None:
    from nomadmesh.definitions.fields import _non_negative_duration

    for text in ("10s", "1.5s", "1h2m", "300ms", "1us", "1µs", "0", "+1s", "1h1m1s1ms1us1ns"):
        assert _non_negative_duration(text), text
    for text in ("-1s", "10", "5 seconds", "", "1d", "1.5"):
        assert not _non_negative_duration(text), text


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (1, "1ns"), (1_500, "1.5µs"), (300 * 1_000_000, "300ms"), (S, "1s"), (1_500_000_000, "1.5s"),
    (60 * S, "1m0s"), (90 * S, "1m30s"), (3_720 * S, "1h2m0s"), (72 * 3600 * S, "72h0m0s"), (-S, "-1s"),
    (2**63 - 1, "2562047h47m16.854775807s"),
])
def test_go_duration_writes_what_gos_duration_string_writes(ns: int, text: str) -> None:
    assert go_duration(ns) == text
    assert parse_ns(text) == ns  # and it reads back


@pytest.mark.parametrize("ns", [1, 999, 1_001, 999_999_999, S + 1, 61 * S + 7, 3600 * S * 25 + 1])
def test_go_duration_round_trips(ns: int) -> None:
    assert parse_ns(go_duration(ns)) == ns
    assert parse_ns(go_duration(-ns)) == -ns


def test_the_agents_formatters_are_this_one() -> None:
    """The agent's duration texts (check intervals handed to Consul, session TTL bounds, CA TTLs)
    come from go_duration, so they read as Nomad's and Consul's do ("1m30s", not "90s")."""
    import datetime as dt

    from nomadmesh.agent.connect.ca_config import _go_duration as ca_text
    from nomadmesh.agent.consul.service_defs import normalize_check
    from nomadmesh.agent.nomad.services import check_duration

    assert check_duration(90 * S) == "1m30s" and check_duration(500_000_000) == "500ms"
    assert ca_text(dt.timedelta(hours=216)) == "216h0m0s"
    assert normalize_check({"Name": "c", "TTL": 90 * S})["TTL"] == "1m30s"

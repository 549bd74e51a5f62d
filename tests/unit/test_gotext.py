"""nomadmesh.gotext.quote against what Go's strconv.Quote prints (outputs written down from Go 1.22)."""
from __future__ import annotations

import pytest

from nomadmesh.gotext import quote


@pytest.mark.parametrize(("text", "go"), [
    ("", '""'),
    ("web-1", '"web-1"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("\r", '"\\r"'),
    ("\a\b\f\n\t\v", '"\\a\\b\\f\\n\\t\\v"'),
    ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
    ("é ü 日本", '"é ü 日本"'),  # printable: kept
    ("\u0085\u200b\u2028", '"\\u0085\\u200b\\u2028"'),  # not printable
    ("\U000e0001", '"\\U000e0001"'),
])
def test_quote_prints_what_gos_strconv_quote_prints(text: str, go: str) -> None:
    assert quote(text) == go


def test_a_quoted_value_is_always_one_line() -> None:
    assert len(quote("a\nb\rc\u2028d\u0085e").splitlines()) == 1

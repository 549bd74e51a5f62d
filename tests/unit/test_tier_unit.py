"""The test tiers (tests/support/markers.py): which folder is which tier, what a unit test may not use,
and that the conftest hook marks the tests of this folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from support import markers
from support.paths import TESTS


@pytest.mark.parametrize("rel,tier", [
    ("unit/test_x.py", "unit"), ("agent/test_x.py", "agent"), ("e2e/test_x.py", "e2e"),
    ("e2e/deeper/test_x.py", "e2e"), ("test_x.py", None), ("support/test_x.py", None), ("unit", None),
])
def test_the_first_folder_under_tests_is_the_tier(rel: str, tier: str | None) -> None:
    assert markers.tier_of(TESTS / rel, TESTS) == tier


def test_a_file_outside_tests_has_no_tier(tmp_path: Path) -> None:
    assert markers.tier_of(tmp_path / "unit" / "test_x.py", TESTS) is None


def test_unit_tests_may_not_need_root_envoy_a_browser_or_an_agent() -> None:
    assert markers.unit_violations({"unit", "parametrize"}, {"tmp_path", "fresh_state"}) == []
    assert markers.unit_violations({"root", "envoy"}, {"module_agent"}) == [
        "marker 'envoy'", "marker 'root'", "fixture 'module_agent'"]


def test_this_test_is_marked_unit_and_nothing_costlier(request: pytest.FixtureRequest) -> None:
    names = {m.name for m in request.node.iter_markers()}
    assert "unit" in names
    assert not names & {"agent", "e2e", "root", "envoy", "browser"}

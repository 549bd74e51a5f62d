"""The conftest hook marks the tests of tests/e2e with `e2e` (so `-m "not e2e"` leaves them out), and a
`root` test gets a skip when not run as root."""
from __future__ import annotations

import os

import pytest


def test_this_test_is_marked_e2e(request: pytest.FixtureRequest) -> None:
    names = {m.name for m in request.node.iter_markers()}
    assert "e2e" in names and not names & {"unit", "agent"}


@pytest.mark.root
def test_a_root_test_runs_only_as_root() -> None:
    assert os.geteuid() == 0  # the hook skipped it otherwise

"""The conftest hook marks the tests of tests/agent with `agent` (so `-m "not agent"` leaves them out)."""
from __future__ import annotations

import pytest


def test_this_test_is_marked_agent(request: pytest.FixtureRequest) -> None:
    names = {m.name for m in request.node.iter_markers()}
    assert "agent" in names and not names & {"unit", "e2e"}

"""A fresh agent state store in a temp dir."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nomadmesh.agent.state import State


def fresh_state(tmp_path: Path) -> Iterator[State]:
    """An empty State in `tmp_path`, closed after the test (use as a fixture body: `yield from`)."""
    state = State(tmp_path / "state.db")
    try:
        yield state
    finally:
        state.close()

"""Fixtures of the agent tier.

`agent`: the Nomad half (state, catalog, scheduler, runtime) in this process on a random port, its
API served over real HTTP, closed after the test. A file that needs a whole agent process instead
defines its own `agent` (test_faults_fuzz, test_scheduler_restart), which takes precedence.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.agents import InProcessAgent


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[InProcessAgent]:
    a = InProcessAgent(tmp_path)
    try:
        yield a
    finally:
        a.close()

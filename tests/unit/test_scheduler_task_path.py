"""Tasks find the agent's own interpreter first on PATH (the samples' `python3` needs flask)."""
from __future__ import annotations

import os
import sys

from nomadmesh.agent.nomad.platform import agent_bin_first


def test_agent_bin_goes_first_once() -> None:
    own = os.path.dirname(sys.executable)
    assert agent_bin_first(f"/usr/bin:{own}:/bin").split(os.pathsep) == [own, "/usr/bin", "/bin"]
    assert agent_bin_first("") == own

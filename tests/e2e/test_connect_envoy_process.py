"""A real Envoy accepts the bootstrap we write (tests/unit/test_connect_envoy.py checks the bootstrap itself)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nomadmesh.connect.envoy import EnvoyProcess


@pytest.mark.envoy
def test_envoy_starts_on_the_bootstrap_with_loopback_admin(tmp_path: Path) -> None:
    # No control plane listens: Envoy must still start and serve its admin interface.
    with EnvoyProcess("n", "c", str(tmp_path / "nobody.sock"), tmp_path) as envoy:
        assert envoy.admin is not None and envoy.admin.startswith("127.0.0.1:")
        info = json.loads(envoy.admin_get("/server_info"))
        assert "/1.40." in info["version"]
        # waiting for its first clusters from the (absent) control plane, not crashed
        assert info["state"] in ("PRE_INITIALIZING", "INITIALIZING")
    assert envoy.proc is None

"""Test tiers by cost, read from the folder a test lives in (tests/<tier>/...).

unit   pure code: no root, no agent process, no Envoy, no network (the fast loop: `pytest tests/unit`)
agent  real processes and loopback HTTP/gRPC: an agent (subprocess or in-process), its runtime; no root
e2e    the expensive tier: root (namespaces, CNI, iptables, mounts, other users), real Envoy, Chromium

conftest's collection hook gives every test its tier's marker and refuses a unit test that asks for
what the unit tier promises not to use.
"""
from __future__ import annotations

from pathlib import Path

TIERS = ("unit", "agent", "e2e")
# Markers that mean a test needs more than pure code, and fixtures that start an agent (conftest's).
COSTLY_MARKERS = frozenset({"root", "envoy", "browser"})
AGENT_FIXTURES = frozenset({"running_agent", "agent_factory", "module_agent", "consul", "host_mesh"})


def tier_of(path: Path, tests_dir: Path) -> str | None:
    """The tier of a test file: the first folder under tests/ if it is one of TIERS, else None."""
    try:
        parts = path.resolve().relative_to(tests_dir.resolve()).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def unit_violations(markers: set[str], fixtures: set[str]) -> list[str]:
    """Why a test cannot be a unit test (empty if it can)."""
    return ([f"marker '{m}'" for m in sorted(markers & COSTLY_MARKERS)]
            + [f"fixture '{f}'" for f in sorted(fixtures & AGENT_FIXTURES)])

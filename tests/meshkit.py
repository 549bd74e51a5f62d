"""Process lookups shared by the bridge-mode mesh tests (test_mesh_e2e, test_faults_mesh)."""
from __future__ import annotations

from pathlib import Path


def pids_with(*markers: str) -> list[int]:
    """Processes whose command line contains every marker (e.g. 'envoy' and an agent's data dir)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(m in cmd for m in markers):
            out.append(int(proc.name))
    return out


def envoy_pids(marker: str) -> list[int]:
    """Envoy processes whose command line mentions `marker` (our agent's data dir)."""
    return pids_with("envoy", marker)


"""`user_cache_dir()`: the user's own folder for what nomadmesh derives and keeps between runs (the
HCL parser's Lark tables, the compiled Jinja templates): `$XDG_CACHE_HOME/nomadmesh`, by default
`~/.cache/nomadmesh`, made private (0700), never a shared folder such as /tmp, because both are
loaded with pickle/marshal. None when it cannot be made: everything that uses it only runs slower.
"""
from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path | None:
    try:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nomadmesh"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found
        return None
    return folder

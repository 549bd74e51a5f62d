"""Write rendered jobs to disk: all or nothing, each file replaced atomically."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nomadmesh.errors import RenderError


def write_jobs(rendered: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write `{filename: text}` into `out_dir`; return the paths written, in mapping order.

    Every file is first written in full to a temp file beside its target, and only when all of
    them are on disk are they moved into place with os.replace (atomic on POSIX), so a reader
    never sees half a job and a failure while writing leaves the old files as they were. A file
    that already holds exactly its text is left alone: creating a file costs more than rendering
    its job on some file systems, and most jobs do not change between two renders.
    """
    for name in rendered:
        if Path(name).name != name or name.startswith("."):
            raise RenderError(f"refusing to write job file {name!r}: not a plain file name")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RenderError(f"{out_dir}: cannot create output folder: {e.strerror}") from e
    # Catch the one likely rename failure (something other than a file in the way) before any
    # file is touched, so the rename phase below either does everything or hits only real I/O errors.
    for name in rendered:
        target = out_dir / name
        if target.exists() and not target.is_file():
            raise RenderError(f"{target}: exists and is not a file; not writing any job")
    staged: list[tuple[str, Path]] = []
    try:
        for name, text in rendered.items():
            data = text.encode("utf-8")
            if _holds(out_dir / name, data):
                continue
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
            staged.append((tmp, out_dir / name))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; job files are not secrets
        for tmp, target in staged:
            os.replace(tmp, target)
    except (OSError, UnicodeError) as e:
        raise RenderError(f"{out_dir}: writing jobs failed: {e}") from e
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [out_dir / name for name in rendered]


def _holds(path: Path, data: bytes) -> bool:
    """Whether `path` is a file whose content is exactly `data`."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False

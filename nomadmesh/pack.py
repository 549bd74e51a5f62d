"""The template pack: the built-in Jinja templates, a project's own `templates/` folder over them,
which template names a service may choose, and copying the built-in pack into a project (eject).

A project's `templates/` folder (beside `services/` and `nomadmesh.json`) overrides built-in
templates by file name. Names starting with `_` are partials (included by other templates, never
rendered on their own), so a service may only choose a top-level template.
"""
from __future__ import annotations

import hashlib
import shutil
from functools import lru_cache
from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "render" / "templates"
TEMPLATES_DIR = "templates"  # a project's own templates, in the project root
DEFAULT_TEMPLATE = "job.nomad.hcl.j2"


def builtin_names() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_file() and p.suffix == ".j2")


def project_names(templates_dir: Path | str | None) -> list[str]:
    if templates_dir is None or not Path(templates_dir).is_dir():
        return []
    return sorted(p.name for p in Path(templates_dir).iterdir() if p.is_file())


def choosable(templates_dir: Path | str | None) -> list[str]:
    """Every template a service may name: top-level files of the project and the built-in pack."""
    names = {*builtin_names(), *project_names(templates_dir)}
    return sorted(n for n in names if not n.startswith(("_", ".")))


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a template name (None when it can): a plain file name, no partial."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        return f"{name!r} is not a template file name: no folders, no '..' (templates live in one folder)"
    if name.startswith("."):
        return f"{name!r} is a hidden file, not a template"
    if name.startswith("_"):
        return f"{name!r} is a partial ('_' prefix): it is included by other templates, not rendered alone"
    return None


def overrides(templates_dir: Path | str | None) -> tuple[tuple[str, str], ...]:
    """(name, sha256) of every project template that differs from the built-in file of that name
    (or has none): what the project changed in the pack. Empty for an unedited eject, so its jobs
    stay byte-identical to the built-in pack's. Cached per folder state (names, sizes, mtimes)."""
    if templates_dir is None or not Path(templates_dir).is_dir():
        return ()
    stats = tuple(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(templates_dir).iterdir()) if p.is_file()
    )
    return _overrides(str(templates_dir), stats)


@lru_cache(maxsize=8)
def _overrides(templates_dir: str, stats: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, str], ...]:
    changed = []
    for name, _, _ in stats:
        text = (Path(templates_dir) / name).read_bytes()
        builtin = BUILTIN_DIR / name
        if not builtin.is_file() or builtin.read_bytes() != text:
            changed.append((name, hashlib.sha256(text).hexdigest()))
    return tuple(changed)


def eject_plan(to: Path, force: bool = False) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(source, target) for every built-in template, and the targets that already exist
    (a conflict unless `force`). Pure apart from reading the folder listing."""
    pairs = [(BUILTIN_DIR / name, Path(to) / name) for name in builtin_names()]
    existing = [] if force else [t for _, t in pairs if t.exists() or t.is_symlink()]
    return pairs, existing


def eject(to: Path, force: bool = False) -> list[Path]:
    """Copy the built-in pack into `to`; refuse (FileExistsError listing them) before writing anything
    if a target exists and `force` is not set. Returns the files written."""
    pairs, existing = eject_plan(to, force)
    if existing:
        raise FileExistsError(", ".join(str(p) for p in existing))
    Path(to).mkdir(parents=True, exist_ok=True)
    for source, target in pairs:
        shutil.copyfile(source, target)
    return [t for _, t in pairs]

"""What `nomadmesh init` writes: a project a newcomer can start from, and the rule for where it may.

`PROJECT_FILES` is pure data ({relative path: text}); `scaffold(target)` checks and writes it.
"""
from __future__ import annotations

import json
from pathlib import Path

_EXAMPLE_SERVICE = {
    "service": {
        "name": "hello",
        "tags": ["example"],
        "port": 8080,
        "connect": {"sidecar_service": {}},
    },
    "nomad": {
        "driver": "raw_exec",
        "command": "python3",
        "args": ["-m", "http.server", "8080", "--bind", "127.0.0.1"],
        "checks": [{"type": "http", "path": "/", "interval": "10s", "timeout": "2s"}],
    },
}

_README = """\
# My mesh

Service definitions for [nomadmesh](https://github.com/nomadmesh/nomadmesh): one folder per
service under `services/` (`services/<name>/service.json`: Consul's service definition plus a
`nomad` key saying how Nomad runs it), project settings in `nomadmesh.json`.

    nomadmesh validate          # check every definition
    nomadmesh render            # write jobs/<name>.nomad.hcl
    nomadmesh agent --dev       # (another terminal) a local Nomad + Consul to try it on
    nomadmesh deploy            # run the mesh

To change how jobs look, `nomadmesh templates eject` copies the built-in templates into
`templates/`, where they override the built-in ones by file name.
"""

_ENVS_README = """\
# Environments

One JSON file per environment (`envs/<name>.json`) holds what differs in that environment:
`"project"` settings, per-service overrides shaped like service.json (deep-merged into it) and
`"variables"` values. Use it with `--env <name>`:

    nomadmesh render --env prod
    nomadmesh deploy --env prod
"""

_PROD_ENV = {
    "project": {"datacenters": ["dc1"]},
    "services": {"hello": {"service": {"tags": ["example", "prod"]}, "nomad": {"count": 2}}},
}

PROJECT_FILES: dict[str, str] = {
    "nomadmesh.json": json.dumps({"datacenters": ["dc1"], "region": "global", "namespace": "default"}, indent=2)
    + "\n",
    "services/hello/service.json": json.dumps(_EXAMPLE_SERVICE, indent=2) + "\n",
    "envs/README.md": _ENVS_README,
    "envs/prod.json": json.dumps(_PROD_ENV, indent=2) + "\n",
    ".gitignore": "jobs/\n.nomadmesh/\n",
    "README.md": _README,
}


def conflicts(target: Path) -> list[str]:
    """Why `target` cannot be scaffolded: every entry in it that init would not write, or would
    write differently. An empty list means go (a missing or empty folder, or a finished init)."""
    target = Path(target)
    if not target.exists():
        return []
    if not target.is_dir():
        return [f"{target} is not a folder"]
    folders = {str(parent) for rel in PROJECT_FILES for parent in Path(rel).parents if str(parent) != "."}
    problems: list[str] = []
    reported: list[Path] = []  # a foreign folder is reported once, not with everything inside it
    for path in sorted(target.rglob("*")):
        rel = path.relative_to(target).as_posix()
        if any(folder in path.parents for folder in reported):
            continue
        if path.is_dir() and not path.is_symlink() and rel in folders:
            continue
        if path.is_dir():
            reported.append(path)
        if rel in PROJECT_FILES and path.is_file() and not path.is_symlink():
            if path.read_text(encoding="utf-8", errors="replace") != PROJECT_FILES[rel]:
                problems.append(f"{path} exists with other content")
            continue
        problems.append(f"{path} is not something init writes")
    return problems


def scaffold(target: Path) -> list[Path]:
    """Write the project into `target`; refuse (ValueError, nothing written) when `conflicts`."""
    problems = conflicts(target)
    if problems:
        raise ValueError("; ".join(problems))
    written = []
    for rel, text in PROJECT_FILES.items():
        path = Path(target) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

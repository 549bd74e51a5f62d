"""Benchmark: load + validate + render N synthetic services; prints services per second.

    .venv/bin/python bench/render.py                 # 1,000 services, seed 1
    .venv/bin/python bench/render.py -n 5000 --json

Writes N `services/<name>/service.json` files (Consul's format plus the `nomad` key) into a
temporary folder, each with up to 4 random upstreams to other generated services on distinct
local_bind_ports, then times, best of --repeat runs:
  load    nomadmesh.definitions.load_spec(folder)   (find, parse, validate, build the model)
  render  nomadmesh.render.render(spec, fmt)  (pure; nothing written)
  total   both, back to back
Target from issue 2: 1,000 services in under 1 s on the 2-core dev machine.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nomadmesh.definitions import load_spec
from nomadmesh.render import render

T = TypeVar("T")


def definitions(n: int, seed: int) -> dict[str, dict[str, Any]]:
    """N service definitions named svc-00000…, with seeded random upstreams (no self edges)."""
    rng = random.Random(seed)
    names = [f"svc-{i:05d}" for i in range(n)]
    out = {}
    for i, name in enumerate(names):
        others = rng.sample(names[:i] + names[i + 1 :], k=min(rng.randint(0, 4), n - 1))
        upstreams = [{"destination_name": o, "local_bind_port": 20000 + j} for j, o in enumerate(others)]
        out[name] = {
            "service": {
                "name": name,
                "tags": [name, f"team-{rng.randint(1, 9)}"],
                "port": 8000 + i % 10000,
                "connect": {"sidecar_service": {"proxy": {"upstreams": upstreams}} if upstreams else {}},
            },
            "nomad": {
                "driver": "raw_exec",
                "command": "python3",
                "args": ["../app.py", name],
                "work_dir": ".",
                "env": {"LOG_LEVEL": rng.choice(["info", "debug"]), "GREETING": 'say "hi" ${not_hcl}'},
                "checks": [{"type": "http", "path": "/health", "interval": "2s", "timeout": "1s"}],
            },
        }
    return out


def write_tree(root: Path, defs: dict[str, dict[str, Any]]) -> None:
    for name, doc in defs.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "service.json").write_text(json.dumps(doc, indent=2))


def best_of(repeat: int, fn: Callable[[], T]) -> tuple[float, T]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--services", type=int, default=1000, help="how many services (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("hcl", "json"), default="hcl")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    n = args.services

    with tempfile.TemporaryDirectory(prefix="nomadmesh-bench-") as tmp:
        root = Path(tmp) / "services"
        write_tree(root, definitions(n, args.seed))
        load_s, spec = best_of(args.repeat, lambda: load_spec(root))
        render_s, rendered = best_of(args.repeat, lambda: render(spec, args.format))
        total_s, _ = best_of(args.repeat, lambda: render(load_spec(root), args.format))
    assert len(rendered) == n, f"rendered {len(rendered)} of {n}"
    figures = {
        "services": n,
        "format": args.format,
        "repeat": args.repeat,
        "load_seconds": round(load_s, 4),
        "render_seconds": round(render_s, 4),
        "total_seconds": round(total_s, 4),
        "services_per_second": round(n / total_s),
        "render_services_per_second": round(n / render_s),
        "mean_job_bytes": round(statistics.mean(len(t) for t in rendered.values())),
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{n} services ({args.format}, best of {args.repeat}): load+validate {load_s:.3f}s, "
            f"render {render_s:.3f}s, together {total_s:.3f}s = {n / total_s:,.0f} services/s "
            f"(render alone {n / render_s:,.0f}/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

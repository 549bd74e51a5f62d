"""Benchmark: load + validate + render N synthetic services; prints services per second.

    .venv/bin/python bench/render.py                 # 1,000 services, seed 1
    .venv/bin/python bench/render.py --format json   # also the JSON paths (cold, warm, old parser)
    .venv/bin/python bench/render.py -n 5000 --json

Writes N `services/<name>/service.json` files (Consul's format plus the `nomad` key) into a
temporary folder, each with up to 4 random upstreams to other generated services on distinct
local_bind_ports, then times, best of --repeat runs:
  load    nomadmesh.definitions.load_spec(folder)   (find, parse, validate, build the model)
  render  nomadmesh.render.render(spec, fmt)  (pure; nothing written)
  total   both, back to back
With --format json, the JSON (each job's HCL parsed back by nomadmesh.jobspec) is also timed as:
  json cold            no parse cache, over forked workers as `render` does (the `render` figure)
  ... filling cache    the same into a new, empty parse cache: a first `render --format json`
  json warm            the same with every parse read back from a filled parse cache
                       (`render --format json` keeps one in .nomadmesh/cache/jobspec)
  ... lark             cold, every job through Lark (no plain reader, jobspec/hcl_simple.py)
  ... 1 process        cold and warm again in this process only
  old parser           1 process, through python-hcl2's own parser (`hcl2.parses_to_tree`, node
                       positions on) as before issue 12's speed-ups: ratios are from the same run
and, what a user runs, `nomadmesh render --format json` as a new process in a project of those N
services (`--cli`, on by default with --format json; best of --repeat, process start included):
  cli first            no jobs/ folder and no parse cache: every job parsed, every file created
  cli cold             jobs/ as the last render left it, the parse cache emptied
  cli warm             both as the last render left them (nothing changed since)
Each is given as wall time and as CPU time (this process and its workers): on a machine shared with
other work the wall time grows, the CPU time much less. The Lark tables are loaded before timing
(a new process pays that once: about 0.1-0.5 s from the user's cache, 2-3 s to build them; plain
jobs, every rendered one, never need them).
Targets: issue 2, 1,000 services to HCL in under 1 s; issue 12, the same through the parse to
JSON, on the 2-core dev machine.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hcl2

from nomadmesh.definitions import load_spec
from nomadmesh.jobspec import hcl as jobspec_hcl
from nomadmesh.render import parallel, render

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


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best_wall_and_cpu(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Best wall time and best CPU time (this process + its reaped workers) of `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, start = _cpu(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return min(walls), min(cpus)


def json_paths(spec: Any, repeat: int, cache_dir: Path) -> dict[str, float]:
    """The JSON paths of the module docstring, each as (wall, CPU) seconds."""
    out: dict[str, float] = {}

    def record(name: str, fn: Callable[[], object]) -> None:
        out[f"{name}_seconds"], out[f"{name}_cpu_seconds"] = (round(x, 4) for x in best_wall_and_cpu(repeat, fn))

    fills = iter(range(repeat))

    def first_render() -> None:  # what `render --format json` does the first time: parse all, fill a new cache
        render(spec, "json", parse_cache=cache_dir.with_name(f"{cache_dir.name}-fill-{next(fills)}"))

    record("json_cold", lambda: render(spec, "json"))
    record("json_cold_filling_cache", first_render)
    render(spec, "json", parse_cache=cache_dir)  # fill the cache
    record("json_warm", lambda: render(spec, "json", parse_cache=cache_dir))
    plain = jobspec_hcl.simple_body
    jobspec_hcl.simple_body = lambda text: None  # every job through Lark, as before the plain reader
    try:
        record("json_cold_lark", lambda: render(spec, "json"))
    finally:
        jobspec_hcl.simple_body = plain
    one_process = parallel.MIN_ITEMS
    parallel.MIN_ITEMS = sys.maxsize
    try:
        record("json_cold_1_process", lambda: render(spec, "json"))
        record("json_warm_1_process", lambda: render(spec, "json", parse_cache=cache_dir))
        ours = jobspec_hcl._parse_tree
        jobspec_hcl._parse_tree = hcl2.parses_to_tree  # python-hcl2's own Lark parser, positions on
        jobspec_hcl.simple_body = lambda text: None
        try:
            record("json_old_parser", lambda: render(spec, "json"))
        finally:
            jobspec_hcl._parse_tree = ours
            jobspec_hcl.simple_body = plain
    finally:
        parallel.MIN_ITEMS = one_process
    out["json_cold_speedup_vs_lark"] = round(out["json_cold_lark_seconds"] / out["json_cold_seconds"], 1)
    out["json_cold_speedup_vs_old"] = round(out["json_old_parser_seconds"] / out["json_cold_seconds"], 1)
    return out


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def cli_paths(project: Path, repeat: int) -> dict[str, float]:
    """`nomadmesh render --format json` in `project`, a new process each time: (wall, CPU) seconds of
    a first render, a cold one (parse cache emptied) and a warm one."""
    command = [sys.executable, "-m", "nomadmesh", "render", "--format", "json"]
    cache, jobs = project / ".nomadmesh", project / "jobs"
    out: dict[str, float] = {}

    def run(name: str, prepare: Callable[[], None]) -> None:
        walls, cpus = [], []
        for _ in range(repeat):
            prepare()
            cpu, start = _children_cpu(), time.perf_counter()
            subprocess.run(command, cwd=project, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
            cpus.append(_children_cpu() - cpu)
        out[f"cli_{name}_seconds"], out[f"cli_{name}_cpu_seconds"] = round(min(walls), 4), round(min(cpus), 4)

    def no_jobs_no_cache() -> None:
        for folder in (cache, jobs):
            shutil.rmtree(folder, ignore_errors=True)

    run("first", no_jobs_no_cache)
    run("cold", lambda: shutil.rmtree(cache, ignore_errors=True))
    run("warm", lambda: None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--services", type=int, default=1000, help="how many services (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("hcl", "json"), default="hcl")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--no-cli", dest="cli", action="store_false",
                        help="with --format json, skip timing `nomadmesh render` as a new process")
    args = parser.parse_args(argv)
    n = args.services

    with tempfile.TemporaryDirectory(prefix="nomadmesh-bench-") as tmp:
        root = Path(tmp) / "services"
        write_tree(root, definitions(n, args.seed))
        load_s, spec = best_of(args.repeat, lambda: load_spec(root))
        render(spec, args.format, names=[spec.services[0].name])  # load the parser's tables once, untimed
        render_s, rendered = best_of(args.repeat, lambda: render(spec, args.format))
        total_s, _ = best_of(args.repeat, lambda: render(load_spec(root), args.format))
        paths = json_paths(spec, args.repeat, Path(tmp) / "parse-cache") if args.format == "json" else {}
        if args.format == "json" and args.cli:
            (Path(tmp) / "nomadmesh.json").write_text("{}\n")
            paths.update(cli_paths(Path(tmp), args.repeat))
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
        **paths,
        **({"json_warm_total_seconds": round(load_s + paths["json_warm_seconds"], 4)} if paths else {}),
        "workers": parallel.usable_cpus() if args.format == "json" else 1,
        "load_average_1m": round(os.getloadavg()[0], 2),
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
        if paths:
            p = paths
            print(
                f"json render, wall (CPU) seconds: cold {p['json_cold_seconds']:.3f} "
                f"({p['json_cold_cpu_seconds']:.3f}) over {figures['workers']} workers, filling the parse cache "
                f"{p['json_cold_filling_cache_seconds']:.3f} ({p['json_cold_filling_cache_cpu_seconds']:.3f}), "
                f"all through Lark {p['json_cold_lark_seconds']:.3f} ({p['json_cold_lark_cpu_seconds']:.3f}) = "
                f"{p['json_cold_speedup_vs_lark']}x the cold figure; cold in 1 process "
                f"{p['json_cold_1_process_seconds']:.3f} ({p['json_cold_1_process_cpu_seconds']:.3f}); warm from "
                f"the parse cache {p['json_warm_seconds']:.3f} ({p['json_warm_cpu_seconds']:.3f}), with load "
                f"{figures['json_warm_total_seconds']:.3f}, in 1 process {p['json_warm_1_process_seconds']:.3f} "
                f"({p['json_warm_1_process_cpu_seconds']:.3f}); old parser {p['json_old_parser_seconds']:.3f} "
                f"({p['json_old_parser_cpu_seconds']:.3f}) = {p['json_cold_speedup_vs_old']}x the cold figure; "
                f"load average {figures['load_average_1m']}"
            )
        if "cli_cold_seconds" in paths:
            p = paths
            print(
                f"nomadmesh render --format json, a new process, wall (CPU) seconds: first (no jobs/, no cache) "
                f"{p['cli_first_seconds']:.3f} ({p['cli_first_cpu_seconds']:.3f}), cold (cache emptied) "
                f"{p['cli_cold_seconds']:.3f} ({p['cli_cold_cpu_seconds']:.3f}), warm {p['cli_warm_seconds']:.3f} "
                f"({p['cli_warm_cpu_seconds']:.3f})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every nomadmesh benchmark in one go and print the figures against issue 7's targets.

    sudo .venv/bin/python bench/run.py            # full run (several minutes on 2 cores)
    sudo .venv/bin/python bench/run.py --quick    # short smoke run (small sizes, few samples)
    sudo .venv/bin/python bench/run.py --json     # every figure by name, one JSON object

Benchmarks (each module also runs alone): hop.py (mesh hop vs direct at fixed rates),
connect_dataplane.py (Envoy start, deny/allow push to enforcement, open connections cut),
mesh_agent.py (intention propagation, deploy connect vs plain, CA leaf signing vs openssl),
scale.py (N services with sidecars on the agent), release.py (canary releases: split accuracy,
failed requests, detection; not in --quick), policy.py (plan and config-entry writes for 50
services with a random upstream graph, deploy to a working chain under default deny), render.py
(1,000 services), http_load.py (the agent's HTTP layer under 1,000 blocking queries + 200 idle
connections), and issue 14's scale: ads_fanout.py (one intention write to 1,000 simulated ADS
proxies), ca_leaf_rate.py (fresh leaves/s through the HTTP API, h2load), hop_latency.py (hop vs
direct at 500 and 1,000 req/s, h2load). Those that need bridge networking (everything on the
agent) need root; without it they are skipped and named.
Figures are printed, never asserted: the machine is shared and noisy, so read medians and the
ratios measured side by side in the same run.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import operator
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ads_fanout
import ca_leaf_rate
import connect_dataplane
import hop
import hop_latency
import http_load
import mesh_agent
import policy
import release as release_bench
import render as render_bench
import scale

Figures = dict[str, Any]

# figure -> (comparison, target, source of the target); a figure absent from a run is not judged
TARGETS: dict[str, tuple[Callable[[float, float], bool], float, str]] = {
    "hop_keepalive_200rps_added_p99_us": (operator.le, 250, "added p99 <= 0.25 ms keep-alive"),
    "hop_keepalive_500rps_added_p99_us": (operator.le, 250, "added p99 <= 0.25 ms keep-alive"),
    "intention_new_conn_p99_ms": (operator.le, 50, "p99 <= 50 ms new connections"),
    "intention_open_conn_p99_ms": (operator.le, 1000, "p99 <= 1 s open connections"),
    "deny_enforced_p99_ms": (operator.le, 1000, "deny enforced <= 1 s (was a test assert)"),
    "allow_restored_p99_ms": (operator.le, 1000, "allow restored <= 1 s (was a test assert)"),
    "deny_cut_open_p50_ms": (operator.le, 1000, "open conn cut <= 1 s (was a test assert)"),
    "envoy_start_listener_ms": (operator.le, 5000, "Envoy start <= 5 s (was a test assert)"),
    "deploy_connect_s": (operator.le, 5, "deploy to first call <= 5 s"),
    "scale_50_intention_all_ms": (operator.le, 200, "all 50 proxies <= 200 ms"),
    "scale_50_sidecar_private_mib_max": (operator.le, 25, "private memory per sidecar <= 25 MB"),
    "ca_leaf_per_s": (operator.ge, 1000, ">= 1,000 leaves/s"),
    "render_total_seconds": (operator.le, 1, "1,000 services <= 1 s"),
    "render_json_total_seconds": (operator.le, 1, "1,000 services to JSON <= 1 s (issue 12)"),
    "render_json_warm_total_seconds": (operator.le, 1, "1,000 services to JSON <= 1 s, parse cache warm"),
    "http_leader_p99_ms": (operator.le, 20, "p99 <= 20 ms under 1,000 blocking + 200 idle"),
    "http_kv_watch_p99_ms": (operator.le, 100, "KV write -> watcher <= 100 ms"),
    "deploy_deny_s": (operator.le, 5, "default deny: deploy to chain <= 5 s"),
    "policy_plan_s": (operator.le, 1, "plan jobs + entries, 50 svcs <= 1 s"),
    "policy_entry_writes_s": (operator.le, 2, "entry writes, 50 svcs <= 2 s"),
    "split_10_error_pts": (operator.le, 2, "10% split within ±2 points (issue 15)"),
    "split_50_error_pts": (operator.le, 3, "50% split within ±3 points (issue 15)"),
    "healthy_failed_requests": (operator.le, 0, "healthy release: 0 failed (issue 15)"),
    "failing_first_to_last_failure_s": (operator.le, 6, "failing v2 off within 5 s + 1 s (issue 15)"),
    "ads_1000_all_acked_max_ms": (operator.le, 1000, "1,000 ADS proxies ACK one write <= 1 s"),
    "ca_rate_leaf_per_s": (operator.ge, 2000, ">= 2,000 leaves/s (issue 14)"),
    "hoplat_keepalive_1000rps_added_p99_us": (operator.le, 250, "added p99 <= 0.25 ms at 1,000 req/s"),
}


def render_figures(n: int, repeat: int) -> Figures:
    """bench/render.py's own runs, HCL then JSON, their JSON read back (names prefixed `render_`, and
    `render_json_` for the JSON run's load/render/total)."""
    out: Figures = {}
    for fmt, prefix in (("hcl", "render_"), ("json", "render_json_")):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            render_bench.main(["-n", str(n), "--repeat", str(repeat), "--format", fmt, "--json"])
        figs = json.loads(buf.getvalue())
        for k, v in figs.items():
            if isinstance(v, (int, float)):
                out[f"render_{k}" if k.startswith("json_") else f"{prefix}{k}"] = v
    return out


def benchmarks(quick: bool) -> list[tuple[str, bool, Callable[[], Figures]]]:
    """(name, needs root, thunk) in run order."""
    return [
        ("render", False, lambda: render_figures(200 if quick else 1000, 1 if quick else 3)),
        ("hop", False, lambda: hop.hop_figures((200, 500), 0.5 if quick else 5)),
        ("dataplane", False, lambda: connect_dataplane.dataplane_figures(4 if quick else 20)),
        ("ca", True, lambda: mesh_agent.ca_figures(100 if quick else 2000, 1 if quick else 3)),
        ("intentions", True, lambda: mesh_agent.intention_figures(3 if quick else 25)),
        ("deploy", True, mesh_agent.deploy_figures),
        ("scale", True, lambda: scale.scale_figures((3,) if quick else (10, 25, 50))),
        ("policy", True, lambda: policy.policy_figures(5 if quick else 50)),
        # A release takes a minute and a half whatever its sizes: left out of the quick smoke run.
        ("release", True, lambda: {} if quick else release_bench.release_figures("5s")),
        ("http", False,
         lambda: http_load.http_load_figures(200, 50, 40, 5) if quick else http_load.http_load_figures()),
        ("ads", True, lambda: ads_fanout.ads_fanout_figures(5 if quick else 1000, 1 if quick else 3)),
        ("ca_rate", True, lambda: ca_leaf_rate.ca_leaf_rate_figures(*((40, 2, 0.2) if quick else (4000, 4, 1)))),
        ("hoplat", False, lambda: hop_latency.hop_latency_figures((500, 1000), 0.2 if quick else 5)),
    ]


def run_all(quick: bool, only: set[str] | None = None) -> tuple[Figures, list[str]]:
    figs: Figures = {}
    notes: list[str] = []
    root = os.geteuid() == 0
    for name, needs_root, thunk in benchmarks(quick):
        if only and name not in only:
            continue
        if needs_root and not root:
            notes.append(f"{name}: skipped (bridge networking needs root)")
            continue
        t0 = time.perf_counter()
        figs |= thunk()
        figs[f"bench_{name}_wall_s"] = round(time.perf_counter() - t0, 1)
    return figs, notes


def verdicts(figs: Figures) -> list[tuple[str, Any, str, str]]:
    rows = []
    for name, value in figs.items():
        if name in TARGETS:
            op, target, text = TARGETS[name]
            rows.append((name, value, text, "met" if op(float(value), target) else "MISSED"))
        else:
            rows.append((name, value, "", ""))
    return rows


def table(figs: Figures) -> str:
    rows = verdicts(figs)
    width = max((len(r[0]) for r in rows), default=10)
    lines = [f"{'figure':{width}}  {'value':>12}  {'target':36}  verdict", "-" * (width + 62)]
    lines += [f"{n:{width}}  {v!s:>12}  {t:36}  {ok}" for n, v, t, ok in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run: small sizes, few samples")
    ap.add_argument("--json", action="store_true", help="print every figure by name as one JSON object")
    ap.add_argument("--only", action="append", choices=[b[0] for b in benchmarks(False)],
                    help="run only this benchmark (repeatable)")
    args = ap.parse_args(argv)
    figs, notes = run_all(args.quick, set(args.only) if args.only else None)
    for note in notes:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(figs, indent=2))
    else:
        print(table(figs))
        missed = [r[0] for r in verdicts(figs) if r[3] == "MISSED"]
        print(f"\ntargets missed: {', '.join(missed) if missed else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

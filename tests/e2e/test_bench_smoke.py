"""Smoke test of the benchmark runner: `bench/run.py --quick --json` runs every benchmark end to end
and prints every expected figure, numeric. No timing is asserted (the machine is shared)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import REPO

pytestmark = [
    pytest.mark.root,  # the agent benchmarks need bridge networking
    pytest.mark.envoy,
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="CNI plugins missing"),
    pytest.mark.timeout(240),
    pytest.mark.alone,  # it floods the machine (hundreds of requests per second, many agents and Envoys)
]

HOP = [f"hop_{mode}_{rate}rps_{kind}"
       for mode in ("keepalive", "newconn") for rate in (200, 500)
       for kind in [f"{what}_p{p}_us" for what in ("direct", "mesh", "added") for p in (50, 90, 99)]
       + [f"ratio_p{p}" for p in (50, 90, 99)] + ["late", "achieved_rps", "n"]]
EXPECTED = [
    *HOP,
    "render_services", "render_load_seconds", "render_render_seconds", "render_total_seconds",
    "render_services_per_second",
    "ca_leaf_per_s", "ca_leaf_per_s_4_clients", "openssl_ecdsap256_signs_per_s", "ca_leaf_openssl_ratio",
    "intention_toggles", "intention_new_conn_p50_ms", "intention_new_conn_p99_ms",
    "intention_open_conn_p50_ms", "intention_open_conn_p99_ms", "intention_allow_p50_ms",
    "intention_allow_p99_ms", "intention_missed",
    "deploy_connect_s", "deploy_plain_s", "deploy_connect_plain_ratio",
    "envoy_start_listener_ms", "deny_enforced_p50_ms", "deny_enforced_p99_ms", "allow_restored_p50_ms",
    "allow_restored_p99_ms", "deny_cut_open_p50_ms",
    *[f"scale_3_{k}" for k in ("deploy_s", "agent_cpu_s", "agent_rss_mib", "sidecars",
                                "sidecar_private_mib_median", "sidecar_private_mib_max",
                                "intention_all_ms", "intention_p50_ms", "allow_all_ms", "probe_round_ms")],
    *[f"http_{k}" for k in ("blocking_queries", "idle_conns", "leader_quiet_p50_ms", "leader_quiet_p99_ms",
                            "leader_p50_ms", "leader_p99_ms", "leader_timeouts", "kv_watch_p50_ms",
                            "kv_watch_p99_ms", "kv_watch_timeouts", "blocking_answered", "conns_refused")],
    *[f"policy_{k}" for k in ("services", "entry_changes", "destinations", "plan_s", "entry_diff_ms",
                              "entry_writes_s", "replan_s")],
    "deploy_deny_s",
    *[f"bench_{b}_wall_s" for b in ("render", "hop", "dataplane", "ca", "intentions", "deploy", "scale", "policy",
                                    "http")],
]


def test_quick_run_prints_every_figure_as_a_number() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NOMAD_ADDR", "CONSUL_HTTP_ADDR")}
    out = subprocess.run([sys.executable, "bench/run.py", "--quick", "--json"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=230)
    assert out.returncode == 0, out.stderr[-3000:]
    figs = json.loads(out.stdout)
    missing = [k for k in EXPECTED if k not in figs]
    assert not missing, f"missing figures: {missing}"
    bad = {k: figs[k] for k in EXPECTED
           if isinstance(figs[k], bool) or not isinstance(figs[k], (int, float)) or not math.isfinite(figs[k])}
    assert not bad, f"non-numeric figures: {bad}"
    # Sanity of meaning, not speed: every toggle enforced, sidecars counted, CA answers distinct.
    assert figs["intention_missed"] == 0
    assert figs["scale_3_sidecars"] == 4  # 3 services + the probe
    assert figs["render_services"] == 200
    assert figs["ca_leaf_per_s"] > 0 and figs["openssl_ecdsap256_signs_per_s"] > 0
    # Every held blocking query was answered after the change that woke them.
    assert figs["http_blocking_answered"] == figs["http_blocking_queries"] == 200

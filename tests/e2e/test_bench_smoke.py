"""Smoke test of the benchmark runner: `bench/run.py --quick --json --only NAME` runs each benchmark
end to end and prints every figure expected of it, numeric. No timing is asserted (the machine is shared).

One test per benchmark, so the suite's workers run them beside other tests; those that load the
machine on purpose (requests at fixed rates, hundreds of connections) run alone.
"""
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
    pytest.mark.timeout(280),
]

HOP = [f"hop_{mode}_{rate}rps_{kind}"
       for mode in ("keepalive", "newconn") for rate in (200, 500)
       for kind in [f"{what}_p{p}_us" for what in ("direct", "mesh", "added") for p in (50, 90, 99)]
       + [f"ratio_p{p}" for p in (50, 90, 99)] + ["late", "achieved_rps", "n"]]
# Every benchmark bench/run.py runs, in its order, with the figures it must print (and its wall time).
EXPECTED = {
    "render": ["render_services", "render_load_seconds", "render_render_seconds", "render_total_seconds",
               "render_services_per_second"],
    "hop": HOP,
    "dataplane": ["envoy_start_listener_ms", "deny_enforced_p50_ms", "deny_enforced_p99_ms", "allow_restored_p50_ms",
                  "allow_restored_p99_ms", "deny_cut_open_p50_ms"],
    "ca": ["ca_leaf_per_s", "ca_leaf_per_s_4_clients", "openssl_ecdsap256_signs_per_s", "ca_leaf_openssl_ratio"],
    "intentions": ["intention_toggles", "intention_new_conn_p50_ms", "intention_new_conn_p99_ms",
                   "intention_open_conn_p50_ms", "intention_open_conn_p99_ms", "intention_allow_p50_ms",
                   "intention_allow_p99_ms", "intention_missed"],
    "deploy": ["deploy_connect_s", "deploy_plain_s", "deploy_connect_plain_ratio"],
    "scale": [f"scale_3_{k}" for k in ("deploy_s", "agent_cpu_s", "agent_rss_mib", "sidecars",
                                       "sidecar_private_mib_median", "sidecar_private_mib_max",
                                       "intention_all_ms", "intention_p50_ms", "allow_all_ms", "probe_round_ms")],
    "policy": [*[f"policy_{k}" for k in ("services", "entry_changes", "destinations", "plan_s", "entry_diff_ms",
                                         "entry_writes_s", "replan_s")], "deploy_deny_s"],
    "release": [],  # a release takes a minute and a half whatever its sizes: only its wall time in --quick
    "http": [f"http_{k}" for k in ("blocking_queries", "idle_conns", "leader_quiet_p50_ms", "leader_quiet_p99_ms",
                                   "leader_p50_ms", "leader_p99_ms", "leader_timeouts", "kv_watch_p50_ms",
                                   "kv_watch_p99_ms", "kv_watch_timeouts", "blocking_answered", "conns_refused")],
    "ads": [f"ads_5_{k}" for k in ("proxies", "rounds", "register_s", "first_config_all_s", "ack_p50_ms", "ack_p99_ms",
                                   "ack_max_ms", "all_acked_median_ms", "all_acked_max_ms", "write_median_ms",
                                   "agent_cpu_per_change_s", "client_cpu_per_change_s", "consul_default_rate_s")],
    "ca_rate": [f"ca_rate_{k}" for k in ("leaves", "clients", "leaf_per_s", "cached_leaf_per_s", "leader_per_s",
                                         "sign_in_process_per_s", "sign_json_in_process_per_s",
                                         "consul_default_per_s")],
    "hoplat": [f"hoplat_{mode}_{rate}rps_{kind}" for mode in ("keepalive", "newconn") for rate in (500, 1000)
               for kind in [f"{what}_p{p}_us" for what in ("direct", "mesh", "added") for p in (50, 99)]
               + [f"ratio_p{p}" for p in (50, 99)] + ["direct_achieved_rps", "mesh_achieved_rps", "n", "failed"]],
}
# Benchmarks that load the machine on purpose (fixed request rates, a thousand connections).
FLOODS = {"hop", "http", "ca_rate", "hoplat"}


def quick_run(*only: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOMAD_ADDR", "CONSUL_HTTP_ADDR")}
    args = [a for name in only for a in ("--only", name)]
    out = subprocess.run([sys.executable, "bench/run.py", "--quick", "--json", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=270)
    assert out.returncode == 0, out.stderr[-3000:]
    figs: dict[str, object] = json.loads(out.stdout)
    return figs


def test_every_benchmark_of_the_runner_is_smoke_tested() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(REPO / "bench"))
    assert [name for name, _, _ in run.benchmarks(quick=True)] == list(EXPECTED)


@pytest.mark.parametrize("bench", [pytest.param(name, marks=[pytest.mark.alone] if name in FLOODS else [])
                                   for name in EXPECTED])
def test_quick_run_prints_every_figure_as_a_number(bench: str) -> None:
    figs = quick_run(bench)
    expected = [*EXPECTED[bench], f"bench_{bench}_wall_s"]
    missing = [k for k in expected if k not in figs]
    assert not missing, f"missing figures: {missing}"
    bad = {k: figs[k] for k in expected
           if isinstance(figs[k], bool) or not isinstance(figs[k], (int, float)) or not math.isfinite(figs[k])}
    assert not bad, f"non-numeric figures: {bad}"
    # Sanity of meaning, not speed: every toggle enforced, sidecars counted, CA answers distinct.
    if bench == "intentions":
        assert figs["intention_missed"] == 0
    if bench == "scale":
        assert figs["scale_3_sidecars"] == 4  # 3 services + the probe
    if bench == "render":
        assert figs["render_services"] == 200
    if bench == "ca":
        assert figs["ca_leaf_per_s"] > 0 and figs["openssl_ecdsap256_signs_per_s"] > 0  # type: ignore[operator]
    if bench == "http":
        # Every held blocking query was answered after the change that woke them.
        assert figs["http_blocking_answered"] == figs["http_blocking_queries"] == 200
    if bench == "ads":
        assert figs["ads_5_proxies"] == 5  # the bench itself fails unless every proxy ACKed
    if bench == "ca_rate":
        assert figs["ca_rate_leaves"] == 40 and figs["ca_rate_leaf_per_s"] > 0  # type: ignore[operator]
    if bench == "hoplat":
        # h2load's requests were answered.
        assert figs["hoplat_keepalive_1000rps_n"] > 0 and figs["hoplat_keepalive_1000rps_failed"] == 0  # type: ignore[operator]

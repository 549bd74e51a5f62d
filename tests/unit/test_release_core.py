"""nomadmesh/release's pure core: options, the step verdict, Envoy metrics → figures, and entries."""
from __future__ import annotations

import pytest

from nomadmesh.release import entries as ent
from nomadmesh.release.decide import Figures, decide
from nomadmesh.release.metrics import Counters, interval_figures, parse_envoy, quantile
from nomadmesh.release.options import ReleaseUsageError, Thresholds, parse_options

# -- options ------------------------------------------------------------------------------------


def test_options_defaults_and_values() -> None:
    o = parse_options()
    assert (o.steps, o.interval_s, o.thresholds.max_error_rate, o.thresholds.max_p99_s) == (
        (5, 25, 50, 100), 30.0, 0.01, None)
    o = parse_options("10, 50,100", "1.5s", "0.5%", "250ms", min_requests=5)
    assert (o.steps, o.interval_s, o.thresholds.max_error_rate, o.thresholds.max_p99_s, o.thresholds.min_requests) \
        == ((10, 50, 100), 1.5, 0.005, 0.25, 5)
    assert parse_options(max_error_rate="0.02").thresholds.max_error_rate == 0.02


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": "5,x,100"}, "release: --steps: 'x' in '5,x,100' is not a whole percentage from 1 to 100"),
    ({"steps": "0,100"}, "release: --steps: '0' in '0,100' is not a whole percentage from 1 to 100"),
    ({"steps": "5,120"}, "release: --steps: '120' in '5,120' is not a whole percentage from 1 to 100"),
    ({"steps": "50,25,100"}, "release: --steps: '50,25,100' must rise step by step (e.g. 5,25,50,100)"),
    ({"steps": "5,50"}, "release: --steps: '5,50' must end at 100: the canary takes all traffic before it is"
                        " promoted"),
    ({"interval": "30"}, 'release: --interval: time: missing unit in duration "30"'),
    ({"interval": "0s"}, "release: --interval: '0s' must be longer than 0"),
    ({"max_error_rate": "lots"}, "release: --max-error-rate: 'lots' is not a share"),
    ({"max_error_rate": "150%"}, "release: --max-error-rate: '150%' is not a share"),
    ({"max_p99": "fast"}, 'release: --max-p99: time: invalid duration "fast"'),
    ({"min_requests": 0}, "release: --min-requests: 0 must be at least 1"),
])
def test_bad_options_say_which_and_why_with_exit_2(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ReleaseUsageError) as e:
        parse_options(**kwargs)  # type: ignore[arg-type]
    assert str(e.value).startswith(message) and e.value.exit_code == 2


# -- the step verdict -----------------------------------------------------------------------------

T = Thresholds(max_error_rate=0.01, max_p99_s=0.25, min_requests=20, max_idle_steps=3)


def test_within_thresholds_advances_then_promotes_at_the_last_step() -> None:
    fine = Figures(requests=200, errors=1, p99_s=0.05)  # 0.5% < 1%
    assert decide(25, False, fine, T).action == "advance"
    verdict = decide(100, True, fine, T)
    assert verdict.action == "promote" and "200 requests, 1 5xx (0.5%)" in verdict.reason


def test_error_rate_beyond_the_threshold_rolls_back_with_the_figures() -> None:
    verdict = decide(50, False, Figures(requests=100, errors=50, p99_s=0.01), T)
    assert verdict.action == "rollback"
    assert verdict.tripped == ("error rate 50.0% (50 of 100 requests answered 5xx) > 1.00%",)


def test_p99_beyond_the_threshold_rolls_back() -> None:
    verdict = decide(5, False, Figures(requests=40, errors=0, p99_s=0.4), T)
    assert (verdict.action, verdict.tripped) == ("rollback", ("p99 400 ms > 250 ms",))


def test_both_thresholds_tripped_are_both_named() -> None:
    verdict = decide(5, False, Figures(requests=40, errors=40, p99_s=0.4), T)
    assert len(verdict.tripped) == 2 and verdict.action == "rollback"


def test_no_canary_traffic_is_no_verdict_but_a_wait() -> None:
    verdict = decide(5, False, Figures(), T)
    assert verdict.action == "wait" and "0 canary requests at 5%" in verdict.reason
    assert decide(100, True, Figures(requests=3), T).action == "wait"  # not even promoted on too little


def test_a_few_failures_among_few_requests_wait_while_a_broken_version_does_not() -> None:
    loose = Thresholds(max_error_rate=0.1, min_requests=20)
    assert decide(5, False, Figures(requests=3, errors=1), loose).action == "wait"  # 1 <= 10% of 20
    assert decide(5, False, Figures(requests=3, errors=3), loose).action == "rollback"  # 3 > 2


def test_slow_but_too_few_requests_is_not_judged_on_latency() -> None:
    assert decide(5, False, Figures(requests=5, errors=0, p99_s=9.0), T).action == "wait"


def test_no_traffic_for_max_idle_steps_intervals_rolls_back_saying_so() -> None:
    assert decide(5, False, Figures(requests=2), T, idle_steps=1).action == "wait"
    verdict = decide(5, False, Figures(requests=2), T, idle_steps=2)
    assert verdict.action == "rollback" and "fewer than 20 requests in 3 intervals at 5%" in verdict.reason


def test_p99_unset_is_not_checked() -> None:
    assert decide(5, False, Figures(requests=40, p99_s=30.0), Thresholds(max_p99_s=None)).action == "advance"


# -- metrics ----------------------------------------------------------------------------------------

ENVOY = """\
# TYPE envoy_http_downstream_rq_xx counter
envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="public_listener"} 90
envoy_http_downstream_rq_xx{envoy_response_code_class="5",envoy_http_conn_manager_prefix="public_listener"} 10
envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="upstream_tax"} 999
# TYPE envoy_http_downstream_rq_time histogram
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="0.5"} 0
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="10"} 50
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="100"} 100
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="public_listener",le="+Inf"} 100
envoy_http_downstream_rq_time_sum{envoy_http_conn_manager_prefix="public_listener"} 2000
envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix="public_listener"} 100
"""


def test_parse_envoy_reads_the_public_listener_only() -> None:
    c = parse_envoy(ENVOY)
    assert (c.answered, c.errors) == (100, 10)
    assert c.buckets == ((0.5, 0), (10.0, 50), (100.0, 100), (float("inf"), 100))


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    buckets = ((10.0, 50), (100.0, 100), (float("inf"), 100))
    assert quantile(0.5, buckets) == 10.0
    assert quantile(0.99, buckets) == pytest.approx(10 + 90 * 49 / 50)
    assert quantile(0.99, ((10.0, 0), (float("inf"), 4))) == 10.0  # in +Inf: the highest finite bound
    assert quantile(0.99, ((10.0, 0), (float("inf"), 0))) is None  # no samples


def test_interval_figures_are_differences_summed_over_sidecars() -> None:
    before = {"a": Counters(100, 10, ((10.0, 50), (float("inf"), 100))),
              "gone": Counters(5, 0, ())}
    now = {"a": Counters(150, 10, ((10.0, 100), (float("inf"), 150))),  # 50 more, all fast, no errors
           "new": Counters(10, 10, ((10.0, 0), (float("inf"), 10))),  # appeared during the interval
           "restarted": Counters(4, 1, ())}  # counters went down (restarted): its values count
    before["restarted"] = Counters(40, 20, ())
    figures = interval_figures(now, before)
    assert (figures.requests, figures.errors) == (64, 11)
    assert figures.p99_s == pytest.approx(0.010)  # 60 samples: 50 ≤ 10 ms, 10 above: p99 at the bound
    assert interval_figures({}, before) == Figures(0, 0, None)


# -- entries ----------------------------------------------------------------------------------------


def test_a_release_creates_a_resolver_and_removes_it_afterwards() -> None:
    made = ent.release_resolver("invoice", None, "invoice v3")
    assert made == {"Kind": "service-resolver", "Name": "invoice", "Subsets": {
        "stable": {"Filter": 'Service.Meta.nomadmesh_canary != "true"', "OnlyPassing": True},
        "canary": {"Filter": 'Service.Meta.nomadmesh_canary == "true"', "OnlyPassing": True}},
        "Meta": {"nomadmesh-release": "invoice v3", "nomadmesh-release-resolver": "created"}}
    assert ent.release_of(made) == "invoice v3"
    assert ent.restored_resolver({**made, "ModifyIndex": 9}) is None


def test_an_operators_resolver_is_amended_and_restored_as_it_was() -> None:
    live = {"Kind": "service-resolver", "Name": "invoice", "ConnectTimeout": "5s", "ModifyIndex": 7,
            "Subsets": {"v1": {"Filter": "Service.Meta.version == 1"}}, "Meta": {"team": "billing"}}
    amended = ent.release_resolver("invoice", live, "invoice v3")
    assert "ModifyIndex" not in amended and amended["ConnectTimeout"] == "5s"
    assert set(amended["Subsets"]) == {"v1", "stable", "canary"}
    assert amended["Meta"] == {"team": "billing", "nomadmesh-release": "invoice v3",
                               "nomadmesh-release-resolver": "amended"}
    assert ent.restored_resolver(amended) == {k: v for k, v in live.items() if k != "ModifyIndex"}
    # A second release over a resolver the first left behind keeps "amended": the operator's is restored.
    assert ent.release_resolver("invoice", amended, "invoice v4")["Meta"]["nomadmesh-release-resolver"] == "amended"


def test_resolvers_a_release_cannot_use_are_named() -> None:
    assert ent.resolver_problem(None) is None
    assert "redirects" in (ent.resolver_problem({"Redirect": {"Service": "billing"}}) or "")
    clash = {"Subsets": {"canary": {"Filter": "x"}}}
    assert ent.resolver_problem(clash) == ("its service-resolver already has subsets named canary, which a "
                                           "release uses")


@pytest.mark.parametrize(("percent", "splits"), [
    (5, [{"Weight": 95, "ServiceSubset": "stable"}, {"Weight": 5, "ServiceSubset": "canary"}]),
    (100, [{"Weight": 100, "ServiceSubset": "canary"}]),
    (0, [{"Weight": 100, "ServiceSubset": "stable"}]),
])
def test_splitter_weights_sum_to_100_and_leave_out_a_zero_share(percent: int, splits: list[object]) -> None:
    entry = ent.splitter("invoice", percent, "invoice v3")
    assert entry == {"Kind": "service-splitter", "Name": "invoice", "Splits": splits,
                     "Meta": {"nomadmesh-release": "invoice v3"}}


# -- what the controller reads from Nomad's answers -------------------------------------------------


def test_a_parsed_jobs_canaries_marks_and_auto_revert() -> None:
    from nomadmesh.release.controller import _groups_canaries

    marked = {"Services": [{"CanaryMeta": {"nomadmesh_canary": "true"}}]}
    job = {"TaskGroups": [{"Update": {"Canary": 1, "AutoRevert": True}, **marked}]}
    assert _groups_canaries(job) == (1, True, True)
    assert _groups_canaries({"TaskGroups": [{"Update": {"Canary": 0}, "Services": [{"Meta": {"a": "b"}}]}]}) == (
        0, False, False)
    assert _groups_canaries({"TaskGroups": []}) == (0, False, True)


def test_deployment_summary_counts_canaries_only_up_to_those_wanted() -> None:
    from nomadmesh.release.target import deployment_summary

    dep = {"TaskGroups": {"api": {"DesiredCanaries": 1, "HealthyAllocs": 3, "UnhealthyAllocs": 0},
                          "web": {"DesiredCanaries": 2, "HealthyAllocs": 1, "UnhealthyAllocs": 1}}}
    assert deployment_summary(dep) == (3, 2, 1)
    assert deployment_summary({}) == (0, 0, 0)

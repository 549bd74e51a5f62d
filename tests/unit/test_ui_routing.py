"""The service page's routing and release views (nomadmesh.ui.routing), from Consul's entries and Nomad's
deployment as the APIs return them. Pure."""
from __future__ import annotations

from nomadmesh.release import entries as release_entries
from nomadmesh.ui import routing as r


def test_the_release_names_the_ui_recognises_are_the_ones_release_writes() -> None:
    resolver = release_entries.release_resolver("api", None, "rel-1")
    splitter = release_entries.splitter("api", 10, "rel-1")
    view = r.release_of(resolver, splitter, None)
    assert view is not None and view.release_id == "rel-1" and view.canary_weight == 10


def test_routing_lists_subsets_failover_splits_and_routes() -> None:
    got = r.routing("api", {"DefaultSubset": "v1", "Subsets": {"v2": {"Filter": "Service.Meta.v == 2"}, "v1": {}},
                            "Failover": {"*": {"Targets": [{"Service": "api", "Datacenter": "dc2"}]},
                                         "v2": {"Service": "api-old", "Datacenters": ["dc3"]}}},
                    {"Splits": [{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "Service": "api-next"}]},
                    {"Routes": [{"Match": {"HTTP": {"PathExact": "/x", "Header": [{"Name": "X-Beta", "Invert": True,
                                                                                   "Present": True}]}},
                                 "Destination": {"ServiceSubset": "v2", "NumRetries": 2}},
                                {"Destination": {"Service": "other"}}]})
    assert [(s.name, s.filter, s.default) for s in got.subsets] == [("v1", "", True),
                                                                     ("v2", "Service.Meta.v == 2", False)]
    assert got.failover == ("* → api/dc2", "v2 → api-old in dc3")
    assert [(s.weight, s.service, s.subset) for s in got.splits] == [(90.0, "api", "v1"), (10.0, "api-next", "")]
    assert [(x.match, x.destination) for x in got.routes] == [
        ("PathExact=/x not Header[X-Beta] present", "api (subset v2), NumRetries=2"), ("every request", "other")]
    assert got.entries == ("service-resolver", "service-splitter", "service-router") and not got.empty
    assert r.routing("api", None, None, None).empty


def test_a_release_is_read_from_its_entries_meta_and_the_jobs_deployment() -> None:
    meta = {"Meta": {"nomadmesh-release": "rel-7"}}
    splitter = {**meta, "Splits": [{"Weight": 75, "ServiceSubset": "stable"},
                                   {"Weight": 25, "ServiceSubset": "canary"}]}
    deployment = {"ID": "0123456789", "Status": "running", "StatusDescription": "Deployment is running",
                  "TaskGroups": {"api": {"DesiredCanaries": 2, "PlacedCanaries": ["a", "b"], "HealthyAllocs": 1,
                                         "Promoted": False}}}
    view = r.release_of(meta, splitter, deployment)
    assert view == r.ReleaseView("rel-7", 25.0, "0123456789", "running", "Deployment is running", 2, 2, 1, False)
    at_stable = r.release_of(meta, {**meta, "Splits": [{"Weight": 100, "ServiceSubset": "stable"}]}, None)
    assert at_stable is not None and at_stable.canary_weight == 0.0
    no_split = r.release_of(meta, None, None)  # the splitter is removed just before promotion
    assert no_split is not None and no_split.canary_weight is None
    assert r.release_of({"Subsets": {}}, {"Splits": []}, deployment) is None  # an operator's entries


def test_the_page_reads_the_steps_and_last_verdict_the_release_publishes_on_its_splitter() -> None:
    progress = release_entries.step_progress((10, 50, 100), 1, "10%: canary within thresholds" + "!" * 600)
    splitter = release_entries.splitter("api", 50, "rel-2", progress)
    assert splitter["Meta"]["nomadmesh-release"] == "rel-2" and len(splitter["Meta"][r.LAST_KEY]) == 512
    view = r.release_of(None, splitter, None)
    assert view is not None and (view.steps, view.step, view.canary_weight) == ((10, 50, 100), 2, 50.0)
    assert view.last_verdict.startswith("10%: canary within thresholds")
    first = r.release_of(None, release_entries.splitter("api", 10, "rel-2",
                                                        release_entries.step_progress((10, 100), 0)), None)
    assert first is not None and (first.step, first.last_verdict) == (1, "")
    for bad in ({r.STEPS_KEY: "10,x", r.STEP_KEY: "1"}, {r.STEPS_KEY: "10,50", r.STEP_KEY: "3"}, {r.STEP_KEY: "1"}):
        hand = r.release_of(None, {"Meta": {"nomadmesh-release": "rel-3", **bad}, "Splits": []}, None)
        assert hand is not None and (hand.steps, hand.step) == ((), 0)  # someone else's Meta: not published

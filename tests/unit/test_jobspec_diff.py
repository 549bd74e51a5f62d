"""Plan Diff in Nomad's shape, and in-place vs destructive per task group (Nomad's tasksUpdated)."""
from __future__ import annotations

import copy

import pytest

from nomadmesh.jobspec import canonicalize, diff, parse_hcl, update_kind
from support.paths import JOBSPEC_FIXTURES as FIXTURES


@pytest.fixture
def base() -> dict:
    return canonicalize(parse_hcl((FIXTURES / "full.nomad.hcl").read_text()))


def _edit(job: dict, fn) -> dict:
    new = copy.deepcopy(job)
    fn(new)
    return canonicalize(new)


def test_identical_jobs_diff_to_none(base):
    d = diff(base, copy.deepcopy(base))
    assert d["Type"] == "None" and d["ID"] == "full"
    assert [g["Type"] for g in d["TaskGroups"]] == ["None"]
    assert d["Fields"] is None and d["Objects"] is None


def test_new_job_is_added_with_every_group_and_task_added(base):
    d = diff(None, base)
    assert d["Type"] == "Added"
    (group,) = d["TaskGroups"]
    assert group["Type"] == "Added" and group["Tasks"][0]["Type"] == "Added"
    assert group["Tasks"][0]["Annotations"] == ["forces create"]
    count = next(f for f in group["Fields"] if f["Name"] == "Count")
    assert count == {"Type": "Added", "Name": "Count", "Old": "", "New": "1", "Annotations": None}


def test_count_change_is_annotated_and_in_place(base):
    new = _edit(base, lambda j: j["TaskGroups"][0].update(Count=3))
    d = diff(base, new)
    (group,) = d["TaskGroups"]
    assert d["Type"] == "Edited" and group["Type"] == "Edited"
    assert group["Fields"] == [{"Type": "Edited", "Name": "Count", "Old": "1", "New": "3",
                                "Annotations": ["forces create"]}]
    assert group["Tasks"][0]["Type"] == "None"
    assert update_kind(base["TaskGroups"][0], new["TaskGroups"][0]) == "in-place"
    fewer = _edit(base, lambda j: j["TaskGroups"][0].update(Count=0))
    assert diff(base, fewer)["TaskGroups"][0]["Fields"][0]["Annotations"] == ["forces destroy"]


def test_env_change_is_a_destructive_task_edit_with_flattened_fields(base):
    new = _edit(base, lambda j: j["TaskGroups"][0]["Tasks"][0]["Env"].update(NUM="4", EXTRA="y"))
    task = diff(base, new)["TaskGroups"][0]["Tasks"][0]
    assert task["Type"] == "Edited"
    assert task["Fields"] == [
        {"Type": "Added", "Name": "Env[EXTRA]", "Old": "", "New": "y", "Annotations": None},
        {"Type": "Edited", "Name": "Env[NUM]", "Old": "3", "New": "4", "Annotations": None},
    ]
    assert task["Annotations"] == ["forces create/destroy update"]
    assert update_kind(base["TaskGroups"][0], new["TaskGroups"][0]) == "destructive"


def test_config_args_diff_as_config_object(base):
    new = _edit(base, lambda j: j["TaskGroups"][0]["Tasks"][0]["Config"].update(args=["-m", "other"]))
    task = diff(base, new)["TaskGroups"][0]["Tasks"][0]
    (config,) = task["Objects"]
    assert config["Name"] == "Config" and config["Type"] == "Edited"
    assert {(f["Name"], f["Old"], f["New"]) for f in config["Fields"]} == {
        ("args[1]", "http.server", "other"), ("args[2]", "${NOMAD_PORT_http}", "")}


def test_kill_timeout_only_is_in_place_annotation(base):
    new = _edit(base, lambda j: j["TaskGroups"][0]["Tasks"][0].update(KillTimeout=1_000_000_000))
    task = diff(base, new)["TaskGroups"][0]["Tasks"][0]
    assert task["Fields"] == [{"Type": "Edited", "Name": "KillTimeout", "Old": "20000000000",
                               "New": "1000000000", "Annotations": None}]
    assert task["Annotations"] == ["forces in-place update"]


def test_tags_and_datacenters_diff_as_string_sets(base):
    new = _edit(base, lambda j: (j.update(Datacenters=["dc1", "dc3"]),
                                 j["TaskGroups"][0]["Services"][0].update(Tags=["a", "c"])))
    d = diff(base, new)
    (dcs,) = [o for o in d["Objects"] if o["Name"] == "Datacenters"]
    assert dcs["Type"] == "Edited"
    assert sorted((f["Type"], f["Old"], f["New"]) for f in dcs["Fields"]) == [
        ("Added", "", "dc3"), ("Deleted", "dc2", "")]
    (service,) = d["TaskGroups"][0]["Objects"]
    assert service["Name"] == "Service" and service["Type"] == "Edited"
    (tags,) = service["Objects"]
    assert tags["Name"] == "Tags"


def test_meta_change_at_job_level_is_a_field_diff(base):
    new = _edit(base, lambda j: j["Meta"].update(owner="someone"))
    d = diff(base, new)
    assert d["Fields"] == [{"Type": "Edited", "Name": "Meta[owner]", "Old": "nomadmesh", "New": "someone",
                            "Annotations": None}]


def _group_edit(fn):
    def apply(job: dict) -> None:
        fn(job["TaskGroups"][0])
    return apply


@pytest.mark.parametrize("change, kind", [
    (lambda g: None, "none"),
    (lambda g: g.update(Count=5), "in-place"),
    (lambda g: g["Update"].update(MaxParallel=3), "in-place"),
    (lambda g: g["RestartPolicy"].update(Attempts=9), "in-place"),
    (lambda g: g["Services"][0].update(Tags=["z"]), "in-place"),
    (lambda g: g["Services"][0]["Checks"][0].update(Interval=5_000_000_000), "in-place"),
    (lambda g: g["Tasks"][0].update(KillTimeout=1), "in-place"),
    (lambda g: g["Tasks"][0]["LogConfig"].update(MaxFiles=1), "in-place"),
    (lambda g: g["Tasks"][0].update(Driver="exec"), "destructive"),
    (lambda g: g["Tasks"][0].update(User="root"), "destructive"),
    (lambda g: g["Tasks"][0]["Config"].update(command="python"), "destructive"),
    (lambda g: g["Tasks"][0]["Env"].update(NEW="1"), "destructive"),
    (lambda g: g["Tasks"][0]["Resources"].update(MemoryMB=512), "destructive"),
    (lambda g: g["Tasks"][0]["Templates"][0].update(EmbeddedTmpl="x"), "destructive"),
    (lambda g: g["Tasks"][0]["Artifacts"][0].update(GetterSource="https://x"), "destructive"),
    # Nomad exposes meta as NOMAD_META_* to tasks, so its combined task meta forces a new alloc
    (lambda g: g["Tasks"][0]["Meta"].update(role="client"), "destructive"),
    (lambda g: g["Meta"].update(team="other"), "destructive"),
    (lambda g: g["Networks"][0]["ReservedPorts"][0].update(Value=9998), "destructive"),
    (lambda g: g["Networks"][0]["DynamicPorts"][0].update(Value=31000), "in-place"),  # assigned values ignored
    (lambda g: g["EphemeralDisk"].update(SizeMB=500), "destructive"),
    (lambda g: g["Services"][0]["Connect"]["SidecarService"]["Proxy"]["Upstreams"][0].update(LocalBindPort=1),
     "destructive"),
    (lambda g: g["Tasks"].append({**copy.deepcopy(g["Tasks"][0]), "Name": "second"}), "destructive"),
])
def test_update_kind_follows_nomad_tasks_updated(base, change, kind):
    new = _edit(base, _group_edit(change))
    assert update_kind(base["TaskGroups"][0], new["TaskGroups"][0]) == kind


def test_job_meta_counts_when_jobs_are_given(base):
    new = _edit(base, lambda j: j["Meta"].update(owner="x"))
    assert update_kind(base["TaskGroups"][0], new["TaskGroups"][0]) == "none"
    assert update_kind(base["TaskGroups"][0], new["TaskGroups"][0], base, new) == "destructive"

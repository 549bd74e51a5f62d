"""from_json: a Job submitted as JSON is checked against the same schema as HCL."""
from __future__ import annotations

import json

import pytest

from nomadmesh.jobspec import JobspecError, canonicalize, from_json, parse_hcl
from support.paths import JOBSPEC_FIXTURES as FIXTURES


def test_parsed_and_canonical_jobs_are_accepted_unchanged():
    parsed = parse_hcl((FIXTURES / "full.nomad.hcl").read_text())
    assert from_json(json.loads(json.dumps(parsed))) == parsed
    canonical = canonicalize(parsed)  # what GET /v1/job/:id returns, nulls included
    assert from_json(json.loads(json.dumps(canonical))) == canonical


def test_field_names_match_case_insensitively_like_go():
    job = from_json({"id": "web",
                     "taskgroups": [{"name": "g", "COUNT": 2, "tasks": [{"name": "t", "driver": "exec"}]}]})
    assert job == {"ID": "web", "TaskGroups": [{"Name": "g", "Count": 2, "Tasks": [{"Name": "t", "Driver": "exec"}]}]}


def test_free_form_config_is_kept_as_is():
    config = {"command": "x", "args": ["a", 1], "nested": {"deep": [{"k": None}]}}
    job = from_json({"ID": "j", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Config": config}]}]})
    assert job["TaskGroups"][0]["Tasks"][0]["Config"] == config


@pytest.mark.parametrize("body, message", [
    ({"ID": "j", "Bogus": 1}, 'Job: unknown field "Bogus"'),
    ({"ID": 5}, "Job.ID: expected a string, got number"),
    ({"ID": "j", "Priority": "high"}, "Job.Priority: expected an integer, got string"),
    ({"ID": "j", "Priority": True}, "Job.Priority: expected an integer, got bool"),
    ({"ID": "j", "TaskGroups": {"Name": "g"}}, "Job.TaskGroups: expected a list, got object"),
    ({"ID": "j", "TaskGroups": [{"Name": "g", "Count": "2"}]}, "Job.TaskGroups[0].Count: expected an integer"),
    ({"ID": "j", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Env": {"A": 1}}]}]},
     "Job.TaskGroups[0].Tasks[0].Env[A]: expected a string, got number"),
    ({"ID": "j", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "KillTimeout": "5s"}]}]},
     "Job.TaskGroups[0].Tasks[0].KillTimeout: expected an integer (nanoseconds), got string"),
    ({"ID": "j", "Spreads": [{"Attribute": "x"}]}, "Job.Spreads: not supported by this agent"),
    ({"ID": "j", "TaskGroups": [{"Name": "g", "Services": [{"Name": "s", "Checkz": []}]}]},
     'Job.TaskGroups[0].Services[0]: unknown field "Checkz"'),
    ({"ID": "j", "id": "k"}, 'field "ID" given twice'),
    (["not", "an", "object"], "Job: expected an object, got array"),
])
def test_unknown_fields_and_wrong_types_name_the_path(body, message):
    with pytest.raises(JobspecError) as err:
        from_json(body)
    assert message in str(err.value)


def test_unsupported_fields_are_accepted_when_empty():
    job = from_json({"ID": "j", "Affinities": None, "Spreads": [], "Periodic": None})
    assert job == {"ID": "j", "Affinities": None, "Spreads": [], "Periodic": None}

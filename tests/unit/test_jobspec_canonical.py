"""canonicalize: Nomad's defaults, idempotence; validate: Nomad-like errors."""
from __future__ import annotations

import copy

import pytest

from nomadmesh.jobspec import canonicalize, parse_hcl, validate
from support.paths import JOBSPEC_FIXTURES as FIXTURES

S = 1_000_000_000

MINIMAL = 'job "web" {\n  group "g" {\n    task "t" {\n      driver = "raw_exec"\n    }\n  }\n}\n'


def _minimal(**changes) -> dict:
    job = parse_hcl(MINIMAL)
    job.update(changes)
    return canonicalize(job)


def test_service_job_defaults_match_nomad():
    job = _minimal()
    assert {k: job[k] for k in ("ID", "Name", "Type", "Priority", "Region", "Namespace", "Datacenters",
                                "NodePool", "Stop", "AllAtOnce", "Version", "JobModifyIndex")} == {
        "ID": "web", "Name": "web", "Type": "service", "Priority": 50, "Region": "global",
        "Namespace": "default", "Datacenters": ["*"], "NodePool": "default", "Stop": False, "AllAtOnce": False,
        "Version": 0, "JobModifyIndex": 0}
    update = {"Stagger": 30 * S, "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * S,
              "HealthyDeadline": 300 * S, "ProgressDeadline": 600 * S, "Canary": 0, "AutoRevert": False,
              "AutoPromote": False}
    assert job["Update"] == update
    (group,) = job["TaskGroups"]
    assert group["Count"] == 1
    assert group["Update"] == update  # inherited although the jobspec has no update block
    assert group["RestartPolicy"] == {"Attempts": 2, "Interval": 1800 * S, "Delay": 15 * S, "Mode": "fail",
                                      "RenderTemplates": False}
    assert group["ReschedulePolicy"] == {"Attempts": 0, "Interval": 0, "Delay": 30 * S,
                                         "DelayFunction": "exponential", "MaxDelay": 3600 * S, "Unlimited": True}
    assert group["EphemeralDisk"] == {"Sticky": False, "Migrate": False, "SizeMB": 300}
    (task,) = group["Tasks"]
    assert task["Resources"]["CPU"] == 100 and task["Resources"]["MemoryMB"] == 300
    assert task["KillTimeout"] == 5 * S
    assert task["LogConfig"] == {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False, "Enabled": None}
    assert task["RestartPolicy"] == group["RestartPolicy"]
    # every schema field is present: value fields at their zero value, the rest None (Nomad's null)
    assert (task["User"], task["Leader"], task["ShutdownDelay"], task["Env"], task["Lifecycle"]) == (
        "", False, 0, None, None)


def test_batch_job_defaults_differ():
    job = _minimal(Type="batch")
    group = job["TaskGroups"][0]
    assert job["Update"] is None and group["Update"] is None
    assert group["RestartPolicy"]["Attempts"] == 3 and group["RestartPolicy"]["Interval"] == 24 * 3600 * S
    assert group["ReschedulePolicy"] == {"Attempts": 1, "Interval": 24 * 3600 * S, "Delay": 5 * S,
                                         "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": False}
    assert group["Migrate"] is None


def test_group_update_merges_over_job_update_and_task_restart_over_group():
    job = canonicalize(parse_hcl((FIXTURES / "full.nomad.hcl").read_text()))
    group = job["TaskGroups"][0]
    assert group["Update"]["MaxParallel"] == 2 and group["Update"]["AutoRevert"] is True
    assert group["Update"]["ProgressDeadline"] == 600 * S  # default fills what neither set
    task = group["Tasks"][0]
    assert task["RestartPolicy"] == {**group["RestartPolicy"], "Attempts": 1}
    assert group["RestartPolicy"]["Mode"] == "delay"


def test_service_and_connect_defaults():
    job = canonicalize(parse_hcl((FIXTURES / "full.nomad.hcl").read_text()))
    group = job["TaskGroups"][0]
    service = group["Services"][0]
    assert (service["AddressMode"], service["Provider"], service["OnUpdate"]) == ("auto", "consul", "require_healthy")
    assert service["Checks"][0]["OnUpdate"] == "require_healthy"
    sidecar_task = service["Connect"]["SidecarTask"]
    assert sidecar_task["Resources"] == {"CPU": 50, "Cores": 0, "MemoryMB": 64, "MemoryMaxMB": 0,
                                         "DiskMB": None, "Networks": None, "Devices": None, "IOPS": None,
                                         "NUMA": None, "SecretsMB": None}
    ports = group["Networks"][0]["DynamicPorts"] + group["Networks"][0]["ReservedPorts"]
    assert {p["HostNetwork"] for p in ports} == {"default"}
    template = group["Tasks"][0]["Templates"][0]
    assert (template["ChangeSignal"], template["Splay"], template["Perms"], template["LeftDelim"]) == (
        "SIGHUP", 5 * S, "0644", "{{")
    # an unnamed service is named after job, group and task, as Nomad does
    text = MINIMAL.replace('driver = "raw_exec"', 'driver = "raw_exec"\n      service {\n        port = "x"\n      }')
    unnamed = canonicalize(parse_hcl(text))
    assert unnamed["TaskGroups"][0]["Tasks"][0]["Services"][0]["Name"] == "web-g-t"
    # Connect sidecar tasks are the scheduler's to inject, not canonicalize's
    countdash = canonicalize(parse_hcl((FIXTURES / "countdash.nomad.hcl").read_text()))
    assert [t["Name"] for t in countdash["TaskGroups"][0]["Tasks"]] == ["web"]


@pytest.mark.parametrize("fixture", ["countdash.nomad.hcl", "full.nomad.hcl"])
def test_canonicalize_is_idempotent_and_pure(fixture):
    parsed = parse_hcl((FIXTURES / fixture).read_text())
    before = copy.deepcopy(parsed)
    once = canonicalize(parsed)
    assert parsed == before  # input untouched
    assert canonicalize(once) == once
    assert canonicalize(copy.deepcopy(once)) == once


def test_valid_jobs_validate_clean():
    assert validate(_minimal()) == []
    assert validate(canonicalize(parse_hcl((FIXTURES / "countdash.nomad.hcl").read_text()))) == []
    assert validate(canonicalize(parse_hcl((FIXTURES / "full.nomad.hcl").read_text()))) == []


def test_validation_errors():
    text = '''job "bad id" {
  priority = 500
  group "g" {
    network {
      port "a" { static = 8080 }
      port "b" { static = 8080 }
    }
    service {
      name = "Api"
      port = "nope"
      connect { sidecar_service {} }
      check {
        type     = "http"
        interval = "100ms"
        timeout  = "2s"
      }
    }
    task "t" {}
    task "t" { driver = "exec" }
  }
  group "g" {
    task "x" { driver = "raw_exec" }
  }
}
'''
    errors = validate(canonicalize(parse_hcl(text)))
    expected = [
        "Job ID contains a space",
        "Job priority must be between [1, 100]",
        "Job task group 2 redefines 'g' from group 1",
        'Static port 8080 already reserved by "a"',
        "Task 2 redefines 't' from task 1",
        "Task t validation failed: Missing task driver",
        'port label "nope" does not exist in the group network',
        'Consul Connect sidecar requires bridge network, found "host" in group "g"',
        'Consul Connect service name "Api" in group "g" must not contain uppercase characters',
        "minimum check interval is 1s",
        "http type must have http path",
    ]
    for message in expected:
        assert any(message in e for e in errors), (message, errors)

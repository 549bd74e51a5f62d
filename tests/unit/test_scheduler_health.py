"""Deployment health and Consul registrations of an allocation: pure functions, table-style."""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.nomad import health
from nomadmesh.agent.nomad.services import check_duration, registrations

S = 1_000_000_000
UPDATE = {"HealthCheck": "checks", "MinHealthyTime": 2 * S, "HealthyDeadline": 30 * S}


def alloc(states: dict[str, Any], client: str = "running", services: list[dict] | None = None) -> dict[str, Any]:
    return {
        "ID": "a1b2c3", "Name": "web.web[0]", "TaskGroup": "web", "ClientStatus": client, "TaskStates": states,
        "AllocatedResources": {"Shared": {"Ports": [{"Label": "http", "Value": 23456, "To": 8080}]}},
        "Job": {"ID": "web", "TaskGroups": [{"Name": "web", "Services": services or [], "Tasks": [
            {"Name": "server", "Lifecycle": None},
            {"Name": "init", "Lifecycle": {"Hook": "prestart", "Sidecar": False}}]}]},
    }


RUNNING = {"server": {"State": "running", "StartedAt": 100 * S}, "init": {"State": "dead"}}


def test_healthy_only_after_min_healthy_time_with_passing_checks() -> None:
    a = alloc(RUNNING)
    first = health.assess(a, UPDATE, ["passing"], joined_ns=100 * S, previous_since=None, now=101 * S)
    assert first.verdict == health.PENDING and first.healthy_since == 101 * S
    later = health.assess(a, UPDATE, ["passing"], 100 * S, first.healthy_since, now=103 * S)
    assert later.verdict == health.HEALTHY


def test_failing_check_resets_and_deadline_makes_unhealthy() -> None:
    a = alloc(RUNNING)
    v = health.assess(a, UPDATE, ["critical"], 100 * S, 101 * S, now=105 * S)
    assert v == health.Assessment(health.PENDING, None)
    v = health.assess(a, UPDATE, ["critical"], 100 * S, None, now=131 * S)
    assert v.verdict == health.UNHEALTHY


def test_task_states_mode_ignores_checks_and_failure_is_unhealthy() -> None:
    a = alloc(RUNNING)
    v = health.assess(a, dict(UPDATE, HealthCheck="task_states"), ["critical"], 100 * S, 100 * S, now=103 * S)
    assert v.verdict == health.HEALTHY
    failed = alloc({"server": {"State": "dead", "Failed": True}}, client="failed")
    assert health.assess(failed, UPDATE, [], 100 * S, None, 101 * S).verdict == health.UNHEALTHY


def test_a_restart_restarts_the_clock() -> None:
    a = alloc({"server": {"State": "running", "StartedAt": 104 * S}, "init": {"State": "dead"}})
    v = health.assess(a, UPDATE, ["passing"], 100 * S, 101 * S, now=105 * S)
    assert v.verdict == health.PENDING and v.healthy_since == 104 * S


def test_deployment_outcome() -> None:
    dep = {"ID": "d", "StatusDescription": "Deployment is running", "TaskGroups": {"web": {
        "DesiredTotal": 2, "ProgressDeadline": 10 * S, "RequireProgressBy": 50 * S}}}
    mk = lambda h: {"TaskGroup": "web", "DeploymentID": "d", "DeploymentStatus": None if h is None else {"Healthy": h}}  # noqa: E731
    assert health.deployment_outcome(dep, [mk(True), mk(None)], 10 * S)[0] == "running"
    status, desc, groups = health.deployment_outcome(dep, [mk(True), mk(True)], 10 * S)
    assert (status, desc, groups["web"]["HealthyAllocs"]) == ("successful", "Deployment completed successfully", 2)
    assert health.deployment_outcome(dep, [mk(True), mk(False)], 10 * S)[:2] == (
        "failed", "Failed due to unhealthy allocations")
    assert health.deployment_outcome(dep, [mk(None)], 60 * S)[:2] == ("failed", "Failed due to progress deadline")


def test_registrations_use_nomads_ids_and_host_mapped_ports() -> None:
    svc = {"Name": "web", "PortLabel": "http", "Tags": ["t"], "Provider": "consul",
           "Checks": [{"Type": "http", "Path": "/health", "Interval": 2 * S, "Timeout": S, "Name": ""},
                      {"Type": "tcp", "Interval": 500_000_000, "Timeout": S, "Name": "tcp"}],
           "Connect": {"SidecarService": {}}}
    (reg,) = registrations(alloc(RUNNING, services=[svc]))
    assert reg["ID"] == "_nomad-task-a1b2c3-group-web-web-http"
    assert (reg["Address"], reg["Port"]) == ("127.0.0.1", 23456)
    assert reg["Checks"][0]["HTTP"] == "http://127.0.0.1:23456/health" and reg["Checks"][0]["Interval"] == "2s"
    assert reg["Checks"][1]["TCP"] == "127.0.0.1:23456" and reg["Checks"][1]["Interval"] == "500ms"
    assert "Connect" not in reg  # no sidecar until proxies really run (connect_hook)
    assert check_duration(None) == "10s" and check_duration(90_000_000_000) == "1m30s"

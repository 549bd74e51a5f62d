"""status shows only the addresses a user calls: not the sidecar's port, not exposed-check listeners."""
from __future__ import annotations

from nomadmesh.deploy.status import alloc_status


def test_only_published_service_ports_are_call_addresses() -> None:
    alloc = {
        "ID": "a1", "ClientStatus": "running",
        "AllocatedResources": {"Shared": {"Ports": [
            {"Label": "http", "Value": 20012, "To": 5000, "HostIP": "0.0.0.0"},
            {"Label": "connect-proxy-order", "Value": 23001, "To": -1, "HostIP": "0.0.0.0"},
            {"Label": "svc_order_ck_3f2a1b", "Value": 24555, "To": -1, "HostIP": "0.0.0.0"},
        ]}},
        "TaskStates": {"order": {"State": "running"}, "connect-proxy-order": {"State": "running"}},
    }
    status = alloc_status(alloc)
    assert status.addresses == ("127.0.0.1:20012",)
    assert status.sidecar == "running"


def _alloc(status: str, healthy: bool | None) -> dict:
    return {"ID": f"{status}-0000-0000", "ClientStatus": status, "DesiredStatus": "run",
            "DeploymentStatus": {"Healthy": healthy} if healthy is not None else None}


def test_a_jobs_problem_and_its_declared_edges() -> None:
    from nomadmesh.deploy.status import job_status

    job = {"ID": "invoice", "Status": "running", "Version": 1, "TaskGroups": [{"Services": [
        {"Name": "invoice", "Connect": {"SidecarService": {"Proxy": {"Upstreams": [{"DestinationName": "tax"}]}}}}]}]}
    ok = job_status(job, [_alloc("running", True)], {"Status": "successful"})
    assert ok.problem is None and ok.edges == (("invoice", "tax"),)
    assert job_status(job, [_alloc("pending", None)], {"Status": "running"}).problem is None  # still deploying
    assert job_status(job, [_alloc("running", False)], None).problem == "alloc running- running (unhealthy)"
    assert job_status(job, [_alloc("failed", None)], None).problem == "alloc failed-0 failed"
    assert job_status(job, [_alloc("running", True)], {"Status": "failed"}).problem == "its latest deployment failed"
    assert job_status(job, [], None).problem == "no allocation is running"
    assert job_status({**job, "Stop": True}, [], None).problem is None  # stopped on purpose

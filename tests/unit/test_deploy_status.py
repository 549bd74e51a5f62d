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

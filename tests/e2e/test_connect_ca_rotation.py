"""CA root rotation under traffic, with real Envoys: the seed's three services with host sidecars
(tests/support/host_mesh.py) answer order -> invoice -> tax in a loop while the CA configuration is
changed to a new root (PUT /v1/connect/ca/configuration). Every sidecar receives its leaf signed by
the new root over SDS, with the two-root trust bundle, and no call of the loop fails."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from support.host_mesh import NAMES, HostMesh
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]

AFTER_S = 2.0  # calls keep going this long once every sidecar serves its new leaf


def _serials(mesh: HostMesh, name: str) -> set[str]:
    certs = json.loads(requests.get(f"http://127.0.0.1:{mesh.admin_ports[name]}/certs", timeout=5).text)
    return {c.get("serial_number", "").lstrip("0") for entry in certs["certificates"]
            for c in entry.get("cert_chain", [])}


def _leaf_serial(mesh: HostMesh, name: str) -> str:
    leaf = requests.get(f"{mesh.agent.consul_addr}/v1/agent/connect/ca/leaf/{name}", timeout=5).json()
    return str(leaf["SerialNumber"]).replace(":", "").lstrip("0")


def test_root_rotation_never_interrupts_traffic(host_mesh: HostMesh) -> None:
    mesh = host_mesh
    results: list[bool] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                results.append(mesh.chain_ok())
            except requests.RequestException:
                results.append(False)

    caller = threading.Thread(target=loop)
    caller.start()
    try:
        wait_until(lambda: len(results) >= 10, 30, what="calls before the rotation")
        old_root = requests.get(f"{mesh.agent.consul_addr}/v1/connect/ca/roots", timeout=5).json()["ActiveRootID"]
        r = requests.put(f"{mesh.agent.consul_addr}/v1/connect/ca/configuration",
                         json={"Provider": "consul", "Config": {"PrivateKeyBits": 384}}, timeout=10)
        assert r.status_code == 200, r.text
        roots = requests.get(f"{mesh.agent.consul_addr}/v1/connect/ca/roots", timeout=5).json()
        assert roots["ActiveRootID"] != old_root and len(roots["Roots"]) == 2
        rotated_at = len(results)
        for name in NAMES:
            wait_until(lambda name=name: _leaf_serial(mesh, name) in _serials(mesh, name), 30,
                       what=f"{name}'s sidecar serving its leaf from the new root")
        deadline = time.monotonic() + AFTER_S
        wait_until(lambda: time.monotonic() > deadline, AFTER_S + 5, what="calls after the rotation")
    finally:
        stop.set()
        caller.join(timeout=30)
    failed = results.count(False)
    assert len(results) - rotated_at >= 10, "too few calls across the rotation to say anything"
    assert failed == 0, f"{failed} of {len(results)} calls failed across the root rotation"

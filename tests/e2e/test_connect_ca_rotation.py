"""CA root rotation under traffic, with real Envoys: the seed's three services with host sidecars
(tests/support/host_mesh.py) answer order -> invoice -> tax in a loop while the CA configuration is
changed to a new root (PUT /v1/connect/ca/configuration). Every sidecar serves a new leaf, signed by
the new root, over SDS, with the two-root trust bundle; calls keep going through the mesh before,
during and after the switch, and none fails."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from cryptography import x509

from support.host_mesh import NAMES, HostMesh
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]

AFTER_S = 2.0  # calls keep going this long once every sidecar serves its new leaf


def _serials(mesh: HostMesh, name: str) -> set[str]:
    certs = json.loads(requests.get(f"http://127.0.0.1:{mesh.admin_ports[name]}/certs", timeout=5).text)
    return {c.get("serial_number", "").lstrip("0") for entry in certs["certificates"]
            for c in entry.get("cert_chain", [])}


def _trusted_serials(mesh: HostMesh, name: str) -> set[str]:
    """The serials of the roots the sidecar's trust bundle holds."""
    certs = json.loads(requests.get(f"http://127.0.0.1:{mesh.admin_ports[name]}/certs", timeout=5).text)
    return {c.get("serial_number", "").lstrip("0") for entry in certs["certificates"]
            for c in entry.get("ca_cert", [])}


def _leaf(mesh: HostMesh, name: str) -> tuple[str, x509.Certificate]:
    """The agent's current leaf for `name`: its serial as Envoy shows it, and the certificate."""
    leaf = requests.get(f"{mesh.agent.consul_addr}/v1/agent/connect/ca/leaf/{name}", timeout=5).json()
    return (str(leaf["SerialNumber"]).replace(":", "").lstrip("0"),
            x509.load_pem_x509_certificates(leaf["CertPEM"].encode())[0])


def _serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


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
        assert all(results), "the mesh failed before the rotation"
        old_root = requests.get(f"{mesh.agent.consul_addr}/v1/connect/ca/roots", timeout=5).json()["ActiveRootID"]
        served_before = {name: _serials(mesh, name) for name in NAMES}
        r = requests.put(f"{mesh.agent.consul_addr}/v1/connect/ca/configuration",
                         json={"Provider": "consul", "Config": {"PrivateKeyBits": 384}}, timeout=10)
        assert r.status_code == 200, r.text
        roots = requests.get(f"{mesh.agent.consul_addr}/v1/connect/ca/roots", timeout=5).json()
        assert roots["ActiveRootID"] != old_root and len(roots["Roots"]) == 2
        new_root, old_cert = (x509.load_pem_x509_certificate(r["RootCert"].encode()) for r in roots["Roots"])
        rotated_at = len(results)
        for name in NAMES:
            serial, cert = _leaf(mesh, name)
            cert.verify_directly_issued_by(new_root)  # re-issued from the new root ...
            assert serial not in served_before[name]  # ... a new leaf, not the one served before
            wait_until(lambda name=name, serial=serial: serial in _serials(mesh, name), 30,
                       what=f"{name}'s sidecar serving its leaf from the new root")
            assert {_serial(new_root), _serial(old_cert)} <= _trusted_serials(mesh, name)
        switched_at = len(results)
        deadline = time.monotonic() + AFTER_S
        wait_until(lambda: time.monotonic() > deadline, AFTER_S + 5, what="calls after the rotation")
    finally:
        stop.set()
        caller.join(timeout=30)
    failed = results.count(False)
    assert len(results) - switched_at >= 5, "too few calls once every sidecar served its new leaf"
    assert switched_at > rotated_at or len(results) - rotated_at >= 10, "no calls across the rotation"
    assert failed == 0, f"{failed} of {len(results)} calls failed across the root rotation"

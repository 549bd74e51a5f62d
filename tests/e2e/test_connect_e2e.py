"""Real Envoys on loopback driven by our ADS server: mTLS through an upstream, the public listener
refusing strangers, intentions enforced (and open connections cut), L7 permissions,
exposed paths, and sidecars surviving a control-plane restart.

Topology (all 127.0.0.1, random ports):

    test ──▶ client sidecar  upstream listener `server:127.0.0.1:<up>`  (xDS over the unix socket)
                 │ mTLS, SNI server.default.dc1.internal.<td>
                 ▼
             server sidecar  public_listener:127.0.0.1:<sp>  (xDS over TCP)  ──▶ backend HTTP app
"""
from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import replace

import pytest

from nomadmesh.agent.connect.ca import ConnectCA
from nomadmesh.agent.connect.xds import XdsServer
from nomadmesh.mesh.intentions import HTTPMatch, Intention, Permission
from support.connect_support import DC, pinned_ca
from support.envoy_pair import SERVER, Mesh
from support.meshkit import raw_http_request, tls_client_context
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]

DENY = Intention("client", "server", "deny")


def test_request_through_the_upstream_listener_goes_over_mtls(mesh: Mesh) -> None:
    before = mesh.server_envoy.stats(r"ssl\.handshake").get(f"listener.127.0.0.1_{mesh.server_port}.ssl.handshake", 0)
    status, body = mesh.get("/hello")
    assert (status, body) == (200, b"backend server /hello\n")
    after = mesh.server_envoy.stats(r"ssl\.handshake")[f"listener.127.0.0.1_{mesh.server_port}.ssl.handshake"]
    assert after > before
    sni = f"server.default.{DC}.internal.{pinned_ca().trust_domain}"
    assert mesh.client_envoy.stats(r"ssl\.handshake")[f"cluster.{sni}.ssl.handshake"] >= 1
    # how long Envoy takes to start is a figure: bench/connect_dataplane.py (envoy_start_listener_ms)


def _tls_client(ca: ConnectCA | None, service: str | None) -> ssl.SSLContext:
    return tls_client_context(ca.sign_leaf(service, DC) if ca is not None and service is not None else None)


def _direct(port: int, ctx: ssl.SSLContext | None) -> bytes:
    """Send one HTTP request straight to the public listener; what came back (b'' if refused)."""
    return raw_http_request(port, ctx, b"GET /direct HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=2)


def test_public_listener_refuses_everything_but_an_allowed_mesh_identity(mesh: Mesh) -> None:
    prefix = f"listener.127.0.0.1_{mesh.server_port}.ssl."
    stats0 = mesh.server_envoy.stats(r"ssl\.")
    refused = {
        "plaintext": _direct(mesh.server_port, None),
        "tls without a client certificate": _direct(mesh.server_port, _tls_client(None, None)),
        "certificate from another CA": _direct(mesh.server_port, _tls_client(ConnectCA.generate("other"), "client")),
    }
    mesh.set_server(intentions=(Intention("web", "server", "deny"),))
    try:
        wait_until(lambda: not _direct(mesh.server_port, _tls_client(pinned_ca(), "web")), 5, "web denied")
        refused["valid certificate of a denied service"] = _direct(mesh.server_port, _tls_client(pinned_ca(), "web"))
        # the positive control: the same path with an allowed identity gets through
        allowed = _direct(mesh.server_port, _tls_client(pinned_ca(), "client"))
    finally:
        mesh.restore()
    assert allowed.startswith(b"HTTP/1.0 200") or allowed.startswith(b"HTTP/1.1 200"), allowed
    assert all(out == b"" for out in refused.values()), refused
    assert len(refused) == 4
    stats = mesh.server_envoy.stats(r"ssl\.")
    assert stats[prefix + "fail_verify_no_cert"] > stats0.get(prefix + "fail_verify_no_cert", 0)
    assert stats[prefix + "fail_verify_error"] > stats0.get(prefix + "fail_verify_error", 0)
    assert stats[prefix + "connection_error"] > stats0.get(prefix + "connection_error", 0)


def test_deny_blocks_new_requests_and_cuts_open_connections(mesh: Mesh) -> None:
    """How fast is a figure (bench/connect_dataplane.py: deny_enforced_ms, deny_cut_open_ms, allow_restored_ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", mesh.upstream_port, timeout=5)
    conn.request("GET", "/keepalive")
    assert conn.getresponse().read() == b"backend server /keepalive\n"
    open_sock = conn.sock
    open_sock.settimeout(2)
    denied0 = mesh.server_envoy.stats(r"connect_authz").get("connect_authz.rbac.denied", 0)
    try:
        mesh.set_server(intentions=(DENY,))
        try:
            cut = open_sock.recv(1)  # blocks until the proxy closes the connection (a timeout fails the test)
        except ConnectionError:
            cut = b""
        assert cut == b""
        wait_until(lambda: not mesh.ok(), 5, "deny enforced on new requests")
        assert mesh.server_envoy.stats(r"connect_authz")["connect_authz.rbac.denied"] > denied0
    finally:
        conn.close()
    mesh.cache.set(SERVER, mesh.server_snap)  # delete the intention
    wait_until(mesh.ok, 5, "allowed again after the deny is deleted")


def test_http_protocol_enforces_l7_permissions(mesh: Mesh) -> None:
    l7 = Intention("client", "server", None, (Permission("deny", HTTPMatch(path_prefix="/admin")),))
    try:
        mesh.set_server(protocol="http", intentions=(l7,))
        wait_until(lambda: mesh.status("/admin/x") == 403, 5, "L7 deny on /admin")
        assert mesh.get("/admin/x") == (403, b"RBAC: access denied")
        assert mesh.get("/public") == (200, b"backend server /public\n")
    finally:
        mesh.restore()


def test_exposed_path_serves_only_that_path_in_plain_http(mesh: Mesh) -> None:
    assert mesh.get("/health", port=mesh.health_port) == (200, b"backend server /health\n")
    assert mesh.get("/other", port=mesh.health_port)[0] == 404


def test_sidecars_keep_serving_without_the_control_plane_and_catch_up_after(mesh: Mesh) -> None:
    port, path = int(mesh.xds.address.rsplit(":", 1)[1]), mesh.xds.unix_path
    mesh.xds.stop()
    assert all(mesh.ok(f"/offline/{i}") for i in range(20))
    mesh.set_server(intentions=(DENY,))  # written while the sidecars cannot hear it
    mesh.xds = XdsServer(mesh.cache, f"127.0.0.1:{port}", path).start()
    try:
        wait_until(lambda: not mesh.ok(), 10, "deny picked up after reconnecting")
    finally:
        mesh.restore()


def test_a_rotated_leaf_reaches_the_running_proxy_without_cutting_connections(mesh: Mesh) -> None:
    leaf = pinned_ca().sign_leaf("server", DC)
    conn = http.client.HTTPConnection("127.0.0.1", mesh.upstream_port, timeout=5)
    try:
        conn.request("GET", "/before")
        assert conn.getresponse().read() == b"backend server /before\n"
        mesh.set_server(leaf_cert_pem=leaf.cert_pem, leaf_key_pem=leaf.key_pem)
        serial = f"{leaf.cert.serial_number:x}"

        def served() -> bool:
            certs = json.loads(mesh.server_envoy.admin_get("/certs"))["certificates"]
            return any(c.get("serial_number", "").lstrip("0") == serial.lstrip("0")
                       for entry in certs for c in entry.get("cert_chain", []))
        wait_until(served, 2, "new leaf in Envoy's /certs")
        conn.request("GET", "/after")  # same connection: SDS updates do not drain listeners
        assert conn.getresponse().read() == b"backend server /after\n"
        assert mesh.ok("/fresh")
    finally:
        conn.close()
        mesh.server_snap = replace(mesh.server_snap, leaf_cert_pem=leaf.cert_pem, leaf_key_pem=leaf.key_pem)
        mesh.restore()

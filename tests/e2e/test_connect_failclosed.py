"""Issue 10 finding 2 with real Envoys: a policy Envoy refuses (NACK) must not leave a sidecar on
its older, more permissive policy. The agent serves that proxy a public listener that admits
nobody, reports the refusal, and recovers by itself once a policy Envoy accepts arrives.

* In process (the connect e2e mesh: our ADS server + two real Envoys): a snapshot whose L7
  intention carries a regex Envoy refuses is set straight into the cache, as if the config-entry
  validation had let it through.
* Through a real agent (the seed's host workflow): a sidecar registration Envoy refuses (an
  upstream bound to "localhost", not an IP) shows up on /v1/nomadmesh/proxies and as a line on
  the UI's service page, and the service admits nobody until the registration is fixed.
"""
from __future__ import annotations

from typing import Any

import pytest
import requests

from nomadmesh.mesh.intentions import HTTPMatch, Intention, Permission
from support.envoy_pair import SERVER, Mesh
from support.host_mesh import HostMesh
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]


def deny_admin(regex: str) -> Intention:
    """client may call server, except paths matching `regex`."""
    return Intention("client", "server", None, (Permission("deny", HTTPMatch(path_regex=regex)),))


def test_a_policy_envoy_refuses_fails_closed_then_a_valid_one_recovers(mesh: Mesh) -> None:
    assert mesh.ok("/admin/x")
    try:
        # What the writer meant: no /admin for client. What Envoy got: a regex it refuses.
        mesh.set_server(protocol="http", intentions=(deny_admin("^/admin(.*"),))
        wait_until(lambda: mesh.status("/admin/x") == 403, 5, "/admin refused after the NACK")
        assert mesh.status("/public") == 403  # fail-closed: nobody, for any path
        status = mesh.cache.status(SERVER)
        assert status["FailClosed"] is True
        assert status["LastNack"]["Type"] == "Listener" and "missing )" in status["LastNack"]["Detail"]
        assert mesh.xds.streams[SERVER].nacks  # Envoy really refused it
        # The valid policy: recovered without any other change, and enforced as written.
        mesh.set_server(protocol="http", intentions=(deny_admin("^/admin(.*)$"),))
        wait_until(lambda: mesh.status("/public") == 200, 5, "/public allowed by the valid policy")
        assert mesh.status("/admin/x") == 403
        status = mesh.cache.status(SERVER)
        assert status["FailClosed"] is False and status["LastNack"]["ResolvedAt"] is not None
    finally:
        mesh.restore()


# --- through a real agent ---------------------------------------------------------------------


def proxy_status(mesh: HostMesh, proxy_id: str) -> dict[str, Any]:
    rows = requests.get(f"{mesh.agent.consul_addr}/v1/nomadmesh/proxies", timeout=5).json()
    return next(row for row in rows if row["ProxyID"] == proxy_id)


def service_page(mesh: HostMesh, name: str) -> str:
    r = requests.get(f"{mesh.agent.consul_addr}/ui/services/{name}", timeout=10)
    assert r.status_code == 200, r.text[:300]
    return r.text


def register_invoice(mesh: HostMesh, local_bind_address: str) -> None:
    definition = mesh.definition("invoice")
    definition["Connect"]["SidecarService"]["Proxy"]["Upstreams"][0]["LocalBindAddress"] = local_bind_address
    r = requests.put(f"{mesh.agent.consul_addr}/v1/agent/service/register", json=definition, timeout=5)
    assert r.status_code == 200, r.text


def test_a_refused_sidecar_is_reported_and_admits_nobody_until_fixed(host_mesh: HostMesh) -> None:
    mesh = host_mesh
    assert proxy_status(mesh, "invoice-sidecar-proxy")["LastNack"] is None
    register_invoice(mesh, "localhost")  # Envoy listens on IP addresses only: it NACKs the listener
    wait_until(lambda: proxy_status(mesh, "invoice-sidecar-proxy")["FailClosed"], 10, what="invoice fail-closed")
    wait_until(lambda: mesh.order_fails_naming("invoice"), 10, what="order -> invoice refused")
    status = proxy_status(mesh, "invoice-sidecar-proxy")
    nack = status["LastNack"]
    assert status["Service"] == "invoice" and status["Connected"] is True
    assert nack["Type"] == "Listener" and "localhost" in nack["Detail"] and nack["ResolvedAt"] is None
    assert nack["Since"] > 0
    assert proxy_status(mesh, "tax-sidecar-proxy")["LastNack"] is None  # the others are untouched
    page = service_page(mesh, "invoice")
    assert 'data-proxy="fail-closed"' in page and "localhost" in page and "admits no caller" in page
    assert 'data-proxy="fail-closed"' not in service_page(mesh, "tax")
    register_invoice(mesh, "127.0.0.1")
    wait_until(mesh.chain_ok, 15, what="order -> invoice -> tax again once the registration is fixed")
    status = proxy_status(mesh, "invoice-sidecar-proxy")
    assert status["FailClosed"] is False and status["LastNack"]["ResolvedAt"] is not None
    assert 'data-proxy="fail-closed"' not in service_page(mesh, "invoice")

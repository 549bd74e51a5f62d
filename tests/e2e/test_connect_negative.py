"""Issue 4 item 6, in the agent: a running sidecar's public listener refuses everyone but an
allowed mesh identity.

The sidecar is tax's, started by `nomadmesh connect envoy --sidecar-for tax` against a real agent
(the seed's host workflow, tests/support/host_mesh.py). Five callers are refused, each counted: plaintext,
TLS without a client certificate, a certificate from another CA, an expired certificate from the
agent's own CA (signed here with the root key the agent persisted in its data dir), and a valid
certificate of a service an intention denies. The control, a valid certificate of an allowed
service on the same path, gets tax's answer.
"""
from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator

import pytest
import requests

from nomadmesh.agent.connect.ca import ConnectCA
from support.agents import RunningAgent
from support.host_mesh import HostMesh
from support.meshkit import raw_http_request, tls_client_context as tls_context
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def mesh(module_agent: RunningAgent, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostMesh]:
    m = HostMesh(module_agent, tmp_path_factory.mktemp("negative"))
    try:
        yield m.start()
    finally:
        m.stop()
    assert m.leftovers() == []


def call(port: int, ctx: ssl.SSLContext | None) -> bytes:
    """One HTTP request straight to a public listener; what came back (b'' if refused or cut)."""
    return raw_http_request(port, ctx, b"GET / HTTP/1.1\r\nHost: tax\r\nConnection: close\r\n\r\n", timeout=3)


def test_public_listener_rejects_five_kinds_of_caller_and_admits_an_allowed_one(mesh: HostMesh) -> None:
    agent = mesh.agent
    datacenter = requests.get(f"{agent.consul_addr}/v1/agent/self", timeout=5).json()["Config"]["Datacenter"]
    ours = ConnectCA.load_or_create(agent.data_dir / "connect")  # the agent's own root, from its data dir
    roots = requests.get(f"{agent.consul_addr}/v1/agent/connect/ca/roots", timeout=5).json()
    assert ours.root_pem.strip() in {r["RootCert"].strip() for r in roots["Roots"]}
    port = mesh.proxy_ports["tax"]
    listener = f"listener.0.0.0.0_{port}."
    before = mesh.envoy_stats("tax", r"ssl\.|rbac")

    mesh.intention("mallory", "tax", "deny")
    wait_until(lambda: call(port, tls_context(ours.sign_leaf("mallory", datacenter))) == b"", 2,
               what="mallory denied")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    # caller -> (its TLS context, the tax Envoy counter its rejection must raise)
    callers = {
        "plaintext": (None, listener + "ssl.connection_error"),
        "TLS without a client certificate": (tls_context(None), listener + "ssl.fail_verify_no_cert"),
        "certificate from another CA": (
            tls_context(ConnectCA.generate("other-cluster").sign_leaf("invoice", datacenter)),
            listener + "ssl.fail_verify_error"),
        "expired certificate from our CA": (
            tls_context(ours.sign_leaf("invoice", datacenter, now=long_ago, ttl=dt.timedelta(hours=1))),
            listener + "ssl.fail_verify_error"),
        "valid certificate of a denied service": (tls_context(ours.sign_leaf("mallory", datacenter)),
                                                  "connect_authz.rbac.denied"),
    }
    rejected, counted = [], []
    for what, (ctx, counter) in callers.items():
        stats0 = mesh.envoy_stats("tax", r"ssl\.|rbac")
        if call(port, ctx) == b"":
            rejected.append(what)
        # Envoy counts a refusal as the connection closes, a hair after the client sees it.
        wait_until(lambda c=counter, s0=stats0: mesh.envoy_stats("tax", r"ssl\.|rbac").get(c, 0) > s0.get(c, 0), 2,
                   what=f"{what}: {counter} counted")
        counted.append(what)
    allowed = call(port, tls_context(ours.sign_leaf("invoice", datacenter)))
    mesh.intention("mallory", "tax", None)

    assert rejected == list(callers) and counted == list(callers)
    assert len(rejected) == 5
    assert allowed.startswith(b"HTTP/1.1 200") and b'"Service": "Tax"' in allowed, allowed
    after = mesh.envoy_stats("tax", r"ssl\.|rbac")
    grew = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    print(f"\nrejected and counted {len(rejected)}/5: {', '.join(rejected)}; allowed control: 200; "
          f"stat deltas: { {k.removeprefix(listener): v for k, v in grew.items()} }")

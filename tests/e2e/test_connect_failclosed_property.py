"""Property, with a real Envoy: for random intention sets, some carrying a policy Envoy refuses,
the server sidecar never admits a caller that `nomadmesh.mesh.intentions.evaluate` denies.

Each example sets the server's snapshot straight into the cache (past the config-entry
validation, as anything that slips through would arrive), waits until Envoy has answered the
listeners the cache now serves (ACK, or NACK and then ACK of the fail-closed ones), and calls the
public listener over mTLS as web, api and client. Without a refused policy the proxy decides
exactly as `evaluate`; with one that reaches Envoy, it admits nobody. Successive examples also exercise recovery:
a refused policy followed by a valid one.
"""
from __future__ import annotations

import socket
import ssl
from dataclasses import replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nomadmesh.agent.connect.cache import Resources
from nomadmesh.agent.connect.resources import LISTENER, build_resources
from nomadmesh.agent.connect.snapshot import ProxySnapshot
from nomadmesh.mesh.intentions import HTTPMatch, Intention, Permission, evaluate
from support.connect_support import DC, pinned_ca
from support.envoy_pair import SERVER, Mesh
from support.meshkit import tls_client_context
from support.waiting import wait_until

pytestmark = [pytest.mark.envoy, pytest.mark.timeout(180)]

CALLERS = ("web", "api", "client")
# Each is refused by Envoy (RE2 syntax, a lookahead, program size > 100), not by Python's RE2 alone.
REFUSED_REGEXES = ("/admin(", "[x", "(?=/admin)", "/a{100}")


@cache
def caller_tls(name: str) -> ssl.SSLContext:
    return tls_client_context(pinned_ca().sign_leaf(name, DC))


def admitted(mesh: Mesh, caller: str) -> bool:
    """One request straight to the public listener as `caller`; True if the app answered 200.

    Only the status line is read: after a local 403 Envoy keeps the connection for its 1 s
    delayed-close timeout, and a denied TCP connection is closed before any byte."""
    raw = socket.create_connection(("127.0.0.1", mesh.server_port), timeout=2)
    try:
        sock = caller_tls(caller).wrap_socket(raw)
        sock.sendall(b"GET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n" not in head and (chunk := sock.recv(4096)):
            head += chunk
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return False
    finally:
        raw.close()
    return head.split(b"\r\n", 1)[0].endswith(b" 200 OK")


@st.composite
def intention_sets(draw: st.DrawFn) -> list[Intention]:
    out = []
    for dst in ("server", "*"):
        for src in draw(st.lists(st.sampled_from(("web", "api", "client", "*")), unique=True, max_size=3)):
            out.append(Intention(src, dst, draw(st.sampled_from(("allow", "deny")))))
    if draw(st.booleans()):  # a policy Envoy refuses, for a source without another intention here
        taken = {i.source for i in out if i.destination == "server"}
        free = [s for s in ("web", "api", "client") if s not in taken]
        if free:
            bad = HTTPMatch(path_regex=draw(st.sampled_from(REFUSED_REGEXES)))
            out.append(Intention(draw(st.sampled_from(free)), "server", None, (Permission("deny", bad),)))
    return out


def applied(mesh: Mesh) -> bool:
    """Envoy has accepted the listeners the cache serves now (the fail-closed ones after a NACK)."""
    stream, current = mesh.xds.streams.get(SERVER), mesh.cache.get(SERVER)
    return bool(stream and current and stream.acked_versions.get(LISTENER) == current.versions[LISTENER])


def listener_version(snap: ProxySnapshot) -> str:
    return Resources.from_messages(snap, build_resources(snap)).versions[LISTENER]


REFUSED: set[str] = set()  # listener versions Envoy NACKed in earlier examples


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(intention_sets(), st.booleans())
def test_the_proxy_is_never_more_permissive_than_evaluate(mesh: Mesh, ixns: list[Intention],
                                                          default_allow: bool) -> None:
    stream = mesh.xds.streams[SERVER]
    nacks = len(stream.nacks)
    snap = replace(mesh.server_snap, intentions=tuple(ixns), default_allow=default_allow,
                   protocol="http" if any(i.is_l7 for i in ixns) else "tcp")
    version = listener_version(snap)
    mesh.cache.set(SERVER, snap)
    wait_until(lambda: applied(mesh) or len(stream.nacks) > nacks or version in REFUSED, 5,
               "Envoy answered the listeners")
    if len(stream.nacks) > nacks:
        REFUSED.add(version)
    # A refused regex only reaches Envoy when its permission differs from the default policy;
    # when it does, Envoy refuses the listener and the proxy must then admit nobody.
    refused = version in REFUSED
    allowed = {c: evaluate(c, "server", ixns, default_allow).allowed for c in CALLERS}
    expected = {c: allowed[c] and not refused for c in CALLERS}
    seen: dict[str, bool] = {}

    def settled() -> bool:
        seen.update({c: admitted(mesh, c) for c in CALLERS})
        return seen == expected

    try:
        wait_until(settled, 5, "decisions settled")
    except AssertionError:
        looser = [c for c in CALLERS if seen[c] and not expected[c]]
        raise AssertionError((f"admitted {looser}, who must be refused" if looser else
                              f"expected {expected}, saw {seen}") + f"; intentions {ixns}, default allow "
                             f"{default_allow}, refused by Envoy: {refused}") from None

"""Helpers shared by the mesh tests: process lookups (test_mesh_e2e, test_faults_mesh) and raw
TLS/plaintext callers of a sidecar's public listener (test_connect_e2e, test_connect_negative).
"""
from __future__ import annotations

import socket
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nomadmesh.agent.connect.ca import Leaf


def pids_with(*markers: str) -> list[int]:
    """Processes whose command line contains every marker (e.g. 'envoy' and an agent's data dir)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(m in cmd for m in markers):
            out.append(int(proc.name))
    return out


def envoy_pids(marker: str) -> list[int]:
    """Envoy processes whose command line mentions `marker` (our agent's alloc dir)."""
    return pids_with("envoy", marker)


def tls_client_context(leaf: Leaf | None) -> ssl.SSLContext:
    """A client context presenting `leaf` (or no certificate); it does not verify the server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test judges the server's side, not ours
    if leaf is not None:
        with tempfile.TemporaryDirectory() as tmp:  # ssl only loads certificates from files
            d = Path(tmp)
            (d / "c.pem").write_text(leaf.cert_pem)
            (d / "k.pem").write_text(leaf.key_pem)
            ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


def raw_http_request(port: int, ctx: ssl.SSLContext | None, request: bytes, timeout: float) -> bytes:
    """Send `request` straight to 127.0.0.1:`port` (over TLS if `ctx`); what came back (b'' if refused or cut)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock = ctx.wrap_socket(raw) if ctx is not None else raw
        sock.sendall(request)
        out = b""
        while chunk := sock.recv(4096):
            out += chunk
        return out
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return b""
    finally:
        raw.close()

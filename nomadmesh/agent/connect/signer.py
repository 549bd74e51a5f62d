"""Leaf signing in a child process of the agent, so the HTTP loop's core is free for HTTP.

Signing a leaf (a fresh P-256 key, the certificate, two PEMs) costs ~0.3 ms of CPU; on the HTTP
loop's thread that is half of what a fresh-leaf request costs. `LeafSigner.sign` hands it to one
worker process (this module run with `-m`, started on first use) and awaits the answer, so the
loop serves other requests meanwhile and the signing runs on the other core.

The CA's key reaches the worker only over a private socketpair (never argv, env or disk): with
the first request, and again whenever the CA object changes (a root rotation, a new leaf TTL),
ahead of the next request on the same ordered stream, so each leaf is signed by the CA its request
named. The worker signs with `ConnectCA.sign_leaf` itself: the same certificate, byte for byte in
structure. It has no other inputs and exits when the agent's end of the socket closes. When the
worker cannot start or dies, `sign` answers None and the caller signs in-process as before.

Frames: a 4-byte big-endian length, then a pickle (both ends are this module, one process tree).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nomadmesh.agent.connect import ca as ca_mod

log = logging.getLogger("nomadmesh.agent.connect")

_LENGTH = struct.Struct(">I")


def _frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _ca_message(ca: ca_mod.ConnectCA) -> tuple[Any, ...]:
    return ("ca", ca.cluster_id, ca_mod._key_pem(ca.root_key), ca.root_pem,
            [ca_mod._pem(c) for c in ca.intermediates], ca.leaf_ttl.total_seconds())


class LeafSigner:
    """The agent's end: `await sign(ca, service, datacenter)` from the HTTP loop; `close()` from any thread."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[bool] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[ca_mod.Leaf | None], str]] = {}
        self._next_id = 0
        self._sent_ca: ca_mod.ConnectCA | None = None
        self._closed = False
        self._proc_lock = threading.Lock()

    async def sign(self, ca: ca_mod.ConnectCA, service: str, datacenter: str) -> ca_mod.Leaf | None:
        """A new leaf for `service` signed by `ca` in the worker; None when there is no worker."""
        if not await self._started():
            return None
        assert self._writer is not None
        if ca is not self._sent_ca:  # first use, or the CA changed: the worker signs with this one next
            self._writer.write(_frame(_ca_message(ca)))
            self._sent_ca = ca
        self._next_id += 1
        answer: asyncio.Future[ca_mod.Leaf | None] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = (answer, service)
        self._writer.write(_frame(("sign", self._next_id, service, datacenter)))
        return await answer

    async def _started(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._ready is None and not self._closed:
            self._loop, self._ready = loop, loop.create_future()
            try:
                await self._start()
                self._ready.set_result(True)
            except (OSError, subprocess.SubprocessError) as e:
                log.warning("connect: leaf signer did not start (%s); signing in-process", e)
                self._ready.set_result(False)
        if self._ready is None or loop is not self._loop:
            return False  # closed, or asked from another loop than the one that owns the socket
        return await asyncio.shield(self._ready) and self._writer is not None

    async def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            with self._proc_lock:
                if self._closed:
                    raise OSError("agent stopping")
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", __name__, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C is the agent's; EOF ends it
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=ours)
        self._reader = asyncio.get_running_loop().create_task(self._read_answers(reader))  # held: the loop only weakly

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0]
                request_id, answer = pickle.loads(await reader.readexactly(size))
                future, service = self._pending.pop(request_id)
                if not future.done():
                    future.set_result(_leaf(service, answer) if isinstance(answer, tuple) else None)
                if not isinstance(answer, tuple):
                    log.warning("connect: leaf signer failed for %s: %s", service, answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not self._closed:
                log.warning("connect: leaf signer exited; signing in-process")
        finally:
            self._writer = None
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_result(None)
            self._pending.clear()

    def close(self) -> None:
        with self._proc_lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(10)
        if self._writer is not None and self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._writer.close)
            except RuntimeError:
                pass  # the loop ended meanwhile: its sockets are gone with it


def _leaf(service: str, answer: tuple[str, bytes, str, str]) -> ca_mod.Leaf:
    uri, der, cert_pem, key_pem = answer
    return ca_mod.Leaf(service=service, service_uri=uri, cert=x509.load_der_x509_certificate(der),
                       cert_pem=cert_pem, key_pem=key_pem)


# --- the worker -----------------------------------------------------------------------------------


def _load_ca(cluster_id: str, key_pem: str, root_pem: str, intermediates: list[str],
             ttl_s: float) -> ca_mod.ConnectCA:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ca_mod.ec.EllipticCurvePrivateKey)
    return ca_mod.ConnectCA(cluster_id=cluster_id, root_cert=x509.load_pem_x509_certificate(root_pem.encode()),
                            root_key=key, leaf_ttl=dt.timedelta(seconds=ttl_s),
                            intermediates=tuple(x509.load_pem_x509_certificate(p.encode()) for p in intermediates))


def serve(sock: socket.socket) -> None:
    """Answer sign requests on `sock` until the agent closes it."""
    rfile = sock.makefile("rb")
    ca: ca_mod.ConnectCA | None = None
    while header := rfile.read(_LENGTH.size):
        message = pickle.loads(rfile.read(_LENGTH.unpack(header)[0]))
        if message[0] == "ca":
            ca = _load_ca(*message[1:])
            continue
        _, request_id, service, datacenter = message
        answer: tuple[str, bytes, str, str] | str
        try:
            if ca is None:
                raise ValueError("no CA yet")
            leaf = ca.sign_leaf(service, datacenter)
            answer = (leaf.service_uri, leaf.cert.public_bytes(serialization.Encoding.DER),
                      leaf.cert_pem, leaf.key_pem)
        except Exception as e:  # reported to the agent, which signs in-process instead
            answer = f"{type(e).__name__}: {e}"
        sock.sendall(_frame((request_id, answer)))


if __name__ == "__main__":
    with socket.socket(fileno=int(sys.argv[1])) as agent_end:
        os.set_inheritable(agent_end.fileno(), False)
        serve(agent_end)

"""Loopback ports for servers a test starts.

Ports are picked below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
default) and below Nomad's dynamic ports (20000-32000, which the agent hands to allocations): a port
picked in the ephemeral range and released can be taken by any outgoing connection before the server
binds it (an agent then failed to start on its DNS port in a parallel run). Each xdist worker picks
in a slice of its own, so workers never pick the same port, and a process never hands a port out twice
while others are left.
"""
from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

LOW, HIGH = 10000, 20000  # never handed out by the kernel, nor by the agent to allocations
_given: set[int] = set()


def worker_range() -> range:
    """This process's slice of LOW..HIGH: the xdist worker's (gwN of M), or all of it."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0):
        return range(LOW, HIGH)
    size = (HIGH - LOW) // int(count)
    start = LOW + int(worker[2:]) % int(count) * size
    return range(start, start + size)


def _candidates() -> Iterator[int]:
    """The slice's ports not handed out yet, in random order (all again once every one was)."""
    ports = [p for p in worker_range() if p not in _given]
    if not ports:
        _given.clear()
        ports = list(worker_range())
    random.shuffle(ports)
    yield from ports


@contextmanager
def _bound(kinds: tuple[int, ...], avoid: frozenset[int]) -> Iterator[int]:
    """A port bound on 127.0.0.1 for every socket kind in `kinds`, held until the block ends."""
    for port in _candidates():
        if port in avoid:
            continue
        with ExitStack() as stack:
            try:
                for kind in kinds:
                    stack.enter_context(socket.socket(socket.AF_INET, kind)).bind(("127.0.0.1", port))
            except OSError:
                continue
            _given.add(port)
            yield port
            return
    raise RuntimeError(f"no free port in {worker_range()}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the caller binds it soon after)."""
    with _bound((socket.SOCK_STREAM,), frozenset()) as port:
        return port


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on 127.0.0.1 right now (held together while picked)."""
    with ExitStack() as stack:
        ports: list[int] = []
        for _ in range(n):
            ports.append(stack.enter_context(_bound((socket.SOCK_STREAM,), frozenset(ports))))
        return ports


def free_tcp_udp_port(avoid: frozenset[int] = frozenset()) -> int:
    """A port free on 127.0.0.1 for both TCP and UDP right now (a DNS server binds both), not in
    `avoid` (the ports the same agent's other servers were given)."""
    with _bound((socket.SOCK_STREAM, socket.SOCK_DGRAM), avoid) as port:
        return port

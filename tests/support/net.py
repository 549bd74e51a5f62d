"""Loopback ports for servers a test starts."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it; the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(n: int) -> list[int]:
    """n distinct TCP ports free on 127.0.0.1 right now. Held open together while picked: free_port
    twice in a row may return the same port (the kernel reuses a just-released one), and an agent
    given one port for two servers refuses to start."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_tcp_udp_port(attempts: int = 50, avoid: frozenset[int] = frozenset()) -> int:
    """A port free on 127.0.0.1 for both TCP and UDP right now (a DNS server binds both), not in
    `avoid` (the ports the same agent's other servers were given)."""
    for _ in range(attempts):
        port = free_port()
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free for both TCP and UDP in {attempts} tries")

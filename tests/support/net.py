"""Loopback ports for servers a test starts."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it; the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_tcp_udp_port(attempts: int = 50) -> int:
    """A port free on 127.0.0.1 for both TCP and UDP right now (a DNS server binds both; a port
    free_port finds for TCP may be taken for UDP, which made an agent refuse to start)."""
    for _ in range(attempts):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free for both TCP and UDP in {attempts} tries")

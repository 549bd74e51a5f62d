"""Host ports for an allocation: static ports as asked, dynamic ones free in Nomad's 20000-32000."""
from __future__ import annotations

import random
import socket
from typing import Any

MIN_DYNAMIC, MAX_DYNAMIC = 20000, 32000


class PortsExhausted(Exception):
    pass


def _free(port: int) -> bool:
    """Free on the host: nothing listens on it on any address (what portmap and tasks will bind)."""
    for addr in ("0.0.0.0", "127.0.0.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def assign(tg: dict[str, Any], taken: set[int], rng: random.Random | None = None) -> list[dict[str, Any]]:
    """[{Label, Value, To, HostNetwork, _static}] for the group's network ports."""
    rng = rng or random.Random()
    nets = tg.get("Networks") or []
    if not nets:
        return []
    out: list[dict[str, Any]] = []
    used = set(taken)
    for p in nets[0].get("ReservedPorts") or []:
        out.append({"Label": p["Label"], "Value": int(p["Value"]), "To": int(p.get("To") or 0),
                    "HostNetwork": p.get("HostNetwork") or "default", "_static": True})
        used.add(int(p["Value"]))
    for p in nets[0].get("DynamicPorts") or []:
        for _ in range(200):
            candidate = rng.randint(MIN_DYNAMIC, MAX_DYNAMIC)
            if candidate not in used and _free(candidate):
                break
        else:
            raise PortsExhausted(f"no free dynamic port for {p['Label']!r} in {MIN_DYNAMIC}-{MAX_DYNAMIC}")
        used.add(candidate)
        out.append({"Label": p["Label"], "Value": candidate, "To": int(p.get("To") or 0),
                    "HostNetwork": p.get("HostNetwork") or "default", "_static": False})
    return out


def container_port(port: dict[str, Any]) -> int:
    """Port inside the allocation's namespace: `to`, or the host port when `to` is 0 or -1."""
    to = int(port.get("To") or 0)
    return to if to > 0 else int(port["Value"])

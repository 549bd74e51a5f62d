"""Where Consul Connect sidecars will plug in (the next issue). Today it adds nothing, on purpose.

Nomad rewrites a group whose service has `connect { sidecar_service {} }`: it injects the task
`connect-proxy-<service>` (Envoy), adds the dynamic port `connect-proxy-<service>` and registers the
sidecar service with Consul. The dev agent will do the same here once its xDS server and Envoy
launcher exist. Until then we do not pretend: no proxy task, no proxy port, and no sidecar service in
the catalog (a sidecar registered without a running proxy would only show a failing check).
"""
from __future__ import annotations

from typing import Any


def extra_tasks(job: dict[str, Any], group: dict[str, Any]) -> list[dict[str, Any]]:
    """Tasks to inject into `group` (the Envoy sidecars). None yet."""
    return []


def extra_ports(job: dict[str, Any], group: dict[str, Any]) -> list[dict[str, Any]]:
    """Dynamic ports to add to `group`'s network ({Label, Value 0, To -1}). None yet."""
    return []


def sidecar_registration(alloc: dict[str, Any], service: dict[str, Any], service_id: str) -> dict[str, Any] | None:
    """The Connect.SidecarService to register with `service`. None until proxies really run."""
    return None

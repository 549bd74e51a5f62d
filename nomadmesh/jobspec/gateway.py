"""Validation of a service's `connect { gateway { ... } }` block, with Nomad's wording. Pure.

Nomad's ConsulConnect.Validate / ConsulGateway.Validate / ConsulIngress*.Validate checks come
first, worded as Nomad words them; then what this agent does not implement is refused by name
(a gateway in host network mode, listeners other than tcp and http, the wildcard service), rather
than accepted and ignored. Terminating and mesh gateways never get here: the schema refuses them.
"""
from __future__ import annotations

from typing import Any

INGRESS_PROTOCOLS = ("tcp", "http", "http2", "grpc")  # what Nomad accepts
AGENT_PROTOCOLS = ("tcp", "http")  # what this agent's gateway builders implement
DNS_DISCOVERY_TYPES = ("STRICT_DNS", "LOGICAL_DNS")


def gateway_errors(s: dict[str, Any], g: dict[str, Any], mode: str, group_level: bool) -> list[str]:
    """Every problem with the gateway block of service `s` (none when it has no gateway)."""
    connect = s.get("Connect") or {}
    gateway = connect.get("Gateway")
    if gateway is None:
        return []
    if connect.get("Native") or connect.get("SidecarService") is not None:
        return ["Consul Connect must be exclusively native, make use of a sidecar, or represent a Gateway"]
    where = f'Service "{s.get("Name") or ""}"'
    if not group_level:
        return [f"{where} uses Consul Connect, which is only allowed in a group service block"]
    errors = _proxy_errors(gateway.get("Proxy"))
    ingress = gateway.get("Ingress")
    if ingress is None:
        return [*errors, "One Consul Gateway Configuration must be set"]
    errors += _ingress_errors(ingress)
    if mode == "host":
        errors.append(f'connect gateway: group "{g.get("Name")}" uses network mode "host", which this agent '
                      'does not run gateways in; use network mode "bridge"')
    elif mode != "bridge" and not str(mode).startswith("cni/"):
        errors.append(f'connect gateway: invalid network mode for Consul Connect: group "{g.get("Name")}" uses '
                      f'network mode "{mode}"; must be "bridge", "host", or "cni/*"')
    return errors


def _proxy_errors(proxy: dict[str, Any] | None) -> list[str]:
    if proxy is None:
        return []
    errors = []
    if proxy.get("ConnectTimeout") is None:
        errors.append("Consul Gateway Proxy connection_timeout must be set")
    if proxy.get("EnvoyDNSDiscoveryType") not in ("", None, *DNS_DISCOVERY_TYPES):
        errors.append("Consul Gateway Proxy Envoy DNS Discovery type must be STRICT_DNS or LOGICAL_DNS")
    if proxy.get("EnvoyGatewayBindTaggedAddresses"):
        errors.append("Consul Gateway Proxy envoy_gateway_bind_tagged_addresses is not supported by this agent")
    for bind in (proxy.get("EnvoyGatewayBindAddresses") or {}).values():
        if not isinstance(bind, dict) or not bind.get("Address"):
            errors.append("Consul Gateway Bind Address must be set")
        elif not isinstance(bind.get("Port"), int) or (bind["Port"] <= 0 and bind["Port"] != -1):  # -1: Nomad fills it
            errors.append("Consul Gateway Bind Address must set valid Port")
    return errors


def _ingress_errors(ingress: dict[str, Any]) -> list[str]:
    listeners = ingress.get("Listeners") or []
    if not listeners:
        return ["Consul Ingress Gateway requires at least one listener"]
    errors: list[str] = []
    seen: set[int] = set()
    for listener in listeners:
        port, protocol = listener.get("Port") or 0, listener.get("Protocol") or ""
        services = listener.get("Services") or []
        if port <= 0:
            errors.append("Consul Ingress Listener requires valid Port")
        elif port in seen:
            errors.append(f"port {port} declared on two listeners")  # Consul's entry validation
        seen.add(port)
        if protocol not in INGRESS_PROTOCOLS:
            errors.append(f"Consul Ingress Listener requires protocol of {', '.join(INGRESS_PROTOCOLS)}, "
                          f'got "{protocol}"')
            continue
        if not services:
            errors.append("Consul Ingress Listener requires one or more services")
            continue
        errors += [e for svc in services if (e := _service_error(svc, protocol))]
        if protocol not in AGENT_PROTOCOLS:
            errors.append(f'Consul Ingress Listener on port {port}: protocol "{protocol}" is not supported by '
                          f"this agent (it implements {' and '.join(AGENT_PROTOCOLS)})")
        elif protocol == "tcp" and len(services) > 1:
            errors.append("Multiple services per listener are only supported for L7 protocols, 'http', "
                          f"'grpc' and 'http2' (listener on port {port})")
    return errors


def _service_error(svc: dict[str, Any], protocol: str) -> str | None:
    name, hosts = svc.get("Name") or "", svc.get("Hosts") or []
    if not name:
        return "Consul Ingress Service requires a name"
    if protocol == "tcp":
        if name == "*":
            return 'Consul Ingress Service doesn\'t support wildcard name for "tcp" protocol'
        if hosts:
            return 'Consul Ingress Service doesn\'t support associating hosts to a service for the "tcp" protocol'
    elif name == "*" and hosts:
        return 'Consul Ingress Service with a wildcard "*" service name can not also specify hosts'
    if name == "*":
        return 'Consul Ingress Service "*": the wildcard service is not supported by this agent'
    return None

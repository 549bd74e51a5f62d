"""Consul Connect ingress gateways, injected the way Nomad injects them. Pure.

For each group service with `connect { gateway { ingress { ... } } }` in a bridge-mode group,
Nomad's job_endpoint_hook_connect.go:

* fills in `gateway.proxy` (gatewayProxy): connect timeout 5s and, in bridge mode, no default
  bind plus one bind address per listed service at 0.0.0.0 and its listener port, so Envoy
  listens inside the allocation's namespace where the group's port mappings reach it;
* adds a task `connect-ingress-<service>` (Kind `connect-ingress:<service>`, a main task, not a
  sidecar) running Envoy, unless the group already has one of that Kind; a `sidecar_task` block
  is merged over it;
* injects no port: the listener ports are the operator's to map (`port "inbound" { static = 8080
  to = 8080 }`), as in Nomad's own ingress examples.

The gateway registers in Consul with Kind `ingress-gateway` and the proxy settings as its Proxy
Config (services.py); its Envoy's node id is the service ID and its identity the service name, so
the destinations' intentions see the gateway as the source.
"""
from __future__ import annotations

import copy
from typing import Any

TASK_PREFIX = "connect-ingress-"
KIND_PREFIX = "connect-ingress:"
SERVICE_KIND = "ingress-gateway"
CONNECT_TIMEOUT_NS = 5_000_000_000  # Nomad's defaultConnectTimeout, the same as Consul's
LOG_CONFIG = {"MaxFiles": 2, "MaxFileSizeMB": 2, "Enabled": None, "Disabled": None}


def _ingress(svc: dict[str, Any]) -> dict[str, Any] | None:
    gateway = (svc.get("Connect") or {}).get("Gateway")
    return gateway.get("Ingress") if isinstance(gateway, dict) else None


def _bridge(tg: dict[str, Any]) -> bool:
    nets = tg.get("Networks") or []
    return bool(nets) and (nets[0] or {}).get("Mode") == "bridge"


def ingress_services(tg: dict[str, Any]) -> list[dict[str, Any]]:
    """The group services that are ingress gateways (bridge-mode groups: the only ones we run)."""
    if not _bridge(tg):
        return []
    return [s for s in tg.get("Services") or [] if _ingress(s) is not None]


def _proxy_is_default(proxy: dict[str, Any] | None) -> bool:
    return proxy is None or not (proxy.get("EnvoyGatewayNoDefaultBind") or proxy.get("EnvoyGatewayBindTaggedAddresses")
                                 or proxy.get("EnvoyGatewayBindAddresses"))


def gateway_proxy(gateway: dict[str, Any]) -> dict[str, Any]:
    """Nomad's gatewayProxy for a bridge-mode ingress gateway: an operator's own bind settings are
    kept as they are; otherwise one 0.0.0.0 bind per listed service, at its listener's port."""
    proxy = gateway.get("Proxy")
    if not _proxy_is_default(proxy):
        return copy.deepcopy(proxy)  # type: ignore[arg-type]
    proxy = dict(proxy or {})
    binds = {s.get("Name") or "": {"Address": "0.0.0.0", "Port": int(lst.get("Port") or 0)}
             for lst in (gateway.get("Ingress") or {}).get("Listeners") or [] for s in lst.get("Services") or []}
    return {
        "ConnectTimeout": proxy.get("ConnectTimeout") or CONNECT_TIMEOUT_NS,
        "EnvoyGatewayBindTaggedAddresses": False,
        "EnvoyGatewayBindAddresses": binds,
        "EnvoyGatewayNoDefaultBind": True,
        "EnvoyDNSDiscoveryType": proxy.get("EnvoyDNSDiscoveryType") or "",
        "Config": proxy.get("Config"),
    }


def gateway_task(svc: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The injected Envoy task: `base` is the sidecar task connect_hook builds (Envoy argv, raw_exec,
    resources), renamed and made a main task as Nomad's newConnectGatewayTask has it."""
    name = svc["Name"]
    task = {k: v for k, v in base.items() if k != "Lifecycle"}
    task.update({"Name": f"{TASK_PREFIX}{name}", "Kind": f"{KIND_PREFIX}{name}", "LogConfig": dict(LOG_CONFIG)})
    override = (svc.get("Connect") or {}).get("SidecarTask") or {}
    if override.get("Name"):
        task["Name"] = override["Name"]
    return task


def with_proxies(tg: dict[str, Any]) -> dict[str, Any]:
    """`tg` with each ingress service's `gateway.proxy` filled in (a copy; `tg` is not changed)."""
    services = []
    changed = False
    for svc in tg.get("Services") or []:
        if svc in ingress_services(tg):
            gateway = svc["Connect"]["Gateway"]
            proxy = gateway_proxy(gateway)
            if proxy != gateway.get("Proxy"):
                svc = dict(svc, Connect=dict(svc["Connect"], Gateway=dict(gateway, Proxy=proxy)))
                changed = True
        services.append(svc)
    return dict(tg, Services=services) if changed else tg


def registration_proxy(svc: dict[str, Any]) -> dict[str, Any]:
    """The Consul registration's Proxy for a gateway service (Nomad's newConnectGateway)."""
    proxy = ((svc.get("Connect") or {}).get("Gateway") or {}).get("Proxy") or {}
    config: dict[str, Any] = {}
    if proxy.get("EnvoyGatewayBindAddresses"):
        config["envoy_gateway_bind_addresses"] = copy.deepcopy(proxy["EnvoyGatewayBindAddresses"])
    if proxy.get("EnvoyGatewayNoDefaultBind"):
        config["envoy_gateway_no_default_bind"] = True
    if proxy.get("EnvoyGatewayBindTaggedAddresses"):
        config["envoy_gateway_bind_tagged_addresses"] = True
    if proxy.get("EnvoyDNSDiscoveryType"):
        config["envoy_dns_discovery_type"] = proxy["EnvoyDNSDiscoveryType"]
    if proxy.get("ConnectTimeout") is not None:
        config["connect_timeout_ms"] = int(proxy["ConnectTimeout"]) // 1_000_000
    config.update(proxy.get("Config") or {})
    return {"Config": config}

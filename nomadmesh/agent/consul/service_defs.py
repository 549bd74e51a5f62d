"""Consul service definitions → the agent's AgentService and HealthCheck documents. Pure, no I/O.

Consul accepts a service definition in several spellings: the HTTP API's Go field names
(`LocalBindPort`), any letter case, and the config files' snake_case (`local_bind_port`), which
is what `-config-dir` files and the seed use. `normalize_service` maps all of them onto the Go
field names through one schema, checks value types (a wrong type is an error naming the field, as
Consul's decoder refuses it) and ignores unknown fields, as Consul's JSON decoder does. Opaque maps
(`Meta`, `Proxy.Config`, ...) are copied as they are.

`expand` then applies Consul's defaults (agent/sidecar_service.go, agent/structs/check_type.go):
a `Connect.SidecarService` becomes its own connect-proxy service, and each check gets its ID
(`service:<id>` or `service:<id>:<n>`), name and type.
"""
from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.duration_seconds import parse_duration
from nomadmesh.durations import go_duration

SIDECAR_SUFFIX = "-sidecar-proxy"
SIDECAR_PORT_MIN, SIDECAR_PORT_MAX = 21000, 21255  # Consul's sidecar_min_port / sidecar_max_port


class ServiceDefError(ValueError):
    """A service definition is malformed; the message names the field."""


# --- schema -----------------------------------------------------------------------------------
# A spec is a Python type (str, int, bool), "map" (opaque object), "strmap" (string → string),
# "duration" (Go duration string or integer nanoseconds), ("list", spec) or a dict (a struct).

_UPSTREAM: dict[str, Any] = {
    "DestinationType": str, "DestinationNamespace": str, "DestinationPartition": str,
    "DestinationPeer": str, "DestinationName": str, "Datacenter": str, "LocalBindAddress": str,
    "LocalBindPort": int, "LocalBindSocketPath": str, "LocalBindSocketMode": str, "Config": "map",
    "MeshGateway": "map", "CentrallyConfigured": bool,
}
_EXPOSE_PATH: dict[str, Any] = {"ListenerPort": int, "Path": str, "LocalPathPort": int, "Protocol": str}
_PROXY: dict[str, Any] = {
    "DestinationServiceName": str, "DestinationServiceID": str, "LocalServiceAddress": str,
    "LocalServicePort": int, "LocalServiceSocketPath": str, "Mode": str, "Config": "map",
    "Upstreams": ("list", _UPSTREAM), "MeshGateway": "map",
    "Expose": {"Checks": bool, "Paths": ("list", _EXPOSE_PATH)}, "TransparentProxy": "map",
}
_CHECK: dict[str, Any] = {
    "CheckID": str, "ID": str, "Name": str, "Notes": str, "Status": str, "ServiceID": str,
    "HTTP": str, "Method": str, "Header": "map", "Body": str, "TCP": str, "UDP": str, "GRPC": str,
    "GRPCUseTLS": bool, "TLSServerName": str, "TLSSkipVerify": bool, "Interval": "duration",
    "Timeout": "duration", "TTL": "duration", "AliasService": str, "AliasNode": str,
    "DeregisterCriticalServiceAfter": "duration", "SuccessBeforePassing": int,
    "FailuresBeforeWarning": int, "FailuresBeforeCritical": int, "Args": ("list", str),
    "ScriptArgs": ("list", str), "DockerContainerID": str, "Shell": str, "H2PING": str,
    "OSService": str,
}
_SERVICE: dict[str, Any] = {
    "ID": str, "Name": str, "Tags": ("list", str), "Address": str, "TaggedAddresses": "map",
    "Meta": "strmap", "Port": int, "SocketPath": str, "Kind": str, "Proxy": _PROXY,
    "Check": _CHECK, "Checks": ("list", _CHECK), "EnableTagOverride": bool, "Weights": "map",
    "Namespace": str, "Partition": str, "Token": str, "Locality": "map",
}
_SERVICE["Connect"] = {"Native": bool, "SidecarService": _SERVICE}  # a sidecar is a service definition


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _convert(value: Any, spec: Any, where: str) -> Any:
    if value is None:
        return None
    if spec is bool:
        if not isinstance(value, bool):
            raise ServiceDefError(f"{where}: must be a boolean, not {value!r}")
        return value
    if spec is int:
        if isinstance(value, bool) or not isinstance(value, int):
            # Consul's decoder takes numeric strings in config files ("port": "8080"); so do we.
            if isinstance(value, str) and value.strip().isdigit():
                return int(value)
            raise ServiceDefError(f"{where}: must be an integer, not {value!r}")
        return value
    if spec is str:
        if not isinstance(value, str):
            raise ServiceDefError(f"{where}: must be a string, not {value!r}")
        return value
    if spec == "duration":
        if isinstance(value, bool):
            raise ServiceDefError(f"{where}: must be a duration such as \"10s\", not {value!r}")
        if isinstance(value, int):
            return go_duration(value)  # JSON numbers are nanoseconds (Go time.Duration), shown as Go does
        if not isinstance(value, str):
            raise ServiceDefError(f"{where}: must be a duration such as \"10s\", not {value!r}")
        try:
            parse_duration(value)
        except ValueError:
            raise ServiceDefError(f"{where}: invalid duration {value!r}") from None
        return value
    if spec == "map":
        if not isinstance(value, dict):
            raise ServiceDefError(f"{where}: must be an object")
        return copy.deepcopy(value)
    if spec == "strmap":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ServiceDefError(f"{where}: must be an object of strings")
        return dict(value)
    if isinstance(spec, tuple):
        if not isinstance(value, list):
            raise ServiceDefError(f"{where}: must be a list")
        if None in value:  # a null element would reach the code below as a None check/upstream
            raise ServiceDefError(f"{where}[{value.index(None)}]: must not be null")
        return [_convert(v, spec[1], f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ServiceDefError(f"{where}: must be an object")
        return _struct(value, spec, where)
    raise AssertionError(spec)


def _struct(raw: dict[str, Any], schema: dict[str, Any], where: str) -> dict[str, Any]:
    folded = {_fold(k): k for k in schema}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = folded.get(_fold(str(key)))
        if name is None:
            continue  # unknown fields are ignored, as Consul's decoder does
        converted = _convert(value, schema[name], f"{where}.{name}" if where else name)
        if converted is not None:
            out[name] = converted
    return out


def normalize_service(raw: Any) -> dict[str, Any]:
    """Any spelling of a service definition → Go field names, types checked."""
    if not isinstance(raw, dict):
        raise ServiceDefError("service definition must be a JSON object")
    svc = _struct(raw, _SERVICE, "")
    if not svc.get("Name"):
        raise ServiceDefError("Name: missing service name")
    return svc


def normalize_check(raw: Any, where: str = "Check") -> dict[str, Any]:
    """Any spelling of a check definition → Go field names, types checked (catalog registrations)."""
    if not isinstance(raw, dict):
        raise ServiceDefError(f"{where}: must be an object")
    return _struct(raw, _CHECK, where)


# --- expansion with Consul's defaults -----------------------------------------------------------


@dataclass(frozen=True)
class Expanded:
    """What registering one definition adds: services (parent first) and their checks."""

    services: list[dict[str, Any]]
    checks: list[dict[str, Any]]


def agent_service(svc: dict[str, Any], datacenter: str) -> dict[str, Any]:
    """A normalized definition → Consul's AgentService document (without its checks)."""
    out: dict[str, Any] = {
        "ID": svc.get("ID") or svc["Name"],
        "Service": svc["Name"],
        "Tags": list(svc.get("Tags") or []),
        "Meta": dict(svc.get("Meta") or {}),
        "Port": int(svc.get("Port") or 0),
        "Address": svc.get("Address") or "",
        "Weights": svc.get("Weights") or {"Passing": 1, "Warning": 1},
        "EnableTagOverride": bool(svc.get("EnableTagOverride", False)),
        "Datacenter": datacenter,
    }
    if svc.get("TaggedAddresses"):
        out["TaggedAddresses"] = {tag: _service_address(v) for tag, v in svc["TaggedAddresses"].items()}
    if svc.get("Kind"):
        out["Kind"] = svc["Kind"]
    if svc.get("Locality"):
        out["Locality"] = dict(svc["Locality"])
    if svc.get("Proxy") or svc.get("Kind") == "connect-proxy":
        proxy = dict(svc.get("Proxy") or {})
        proxy.setdefault("Upstreams", [])
        for up in proxy["Upstreams"]:
            up.setdefault("DestinationType", "service")
        proxy.setdefault("Config", {})
        proxy.setdefault("MeshGateway", {})
        proxy.setdefault("Expose", {})
        out["Proxy"] = proxy
    if (svc.get("Connect") or {}).get("Native"):
        out["Connect"] = {"Native": True}
    return out


def _service_address(value: Any) -> Any:
    """Consul's ServiceAddress {Address, Port}: Go decodes its fields whatever their case
    (py-consul sends "address"/"port")."""
    if not isinstance(value, dict):
        return value
    fields = {str(k).lower(): v for k, v in value.items()}
    port = fields.get("port") or 0
    return {"Address": fields.get("address") or "", "Port": port if isinstance(port, int) else 0}


def with_default_tagged_addresses(doc: dict[str, Any]) -> dict[str, Any]:
    """Consul's agent tags a service registered with an IP address as `lan_ipv4`/`wan_ipv4` (or the
    `_ipv6` pair) {Address, Port}, unless those tags were given (agent.addServiceInternal)."""
    try:
        ip = ipaddress.ip_address(doc.get("Address") or "")
    except ValueError:
        return doc
    tagged = dict(doc.get("TaggedAddresses") or {})
    suffix = "ipv4" if ip.version == 4 else "ipv6"
    for tag in (f"lan_{suffix}", f"wan_{suffix}"):
        tagged.setdefault(tag, {"Address": doc["Address"], "Port": doc.get("Port", 0)})
    return dict(doc, TaggedAddresses=tagged)


def _check_doc(chk: dict[str, Any], check_id: str, default_name: str, service: dict[str, Any] | None,
               node: str) -> dict[str, Any]:
    if chk.get("HTTP"):
        kind = "http"
    elif chk.get("TCP"):
        kind = "tcp"
    elif chk.get("AliasService") or chk.get("AliasNode"):
        kind = "alias"
    elif chk.get("TTL"):
        kind = "ttl"
    elif chk.get("GRPC"):
        kind = "grpc"
    elif chk.get("Args") or chk.get("ScriptArgs"):
        kind = "script"
    else:
        raise ServiceDefError(
            f"Check {check_id}: one of HTTP, TCP, TTL, AliasService, GRPC or Args is required")
    if kind in ("http", "tcp", "grpc", "script") and not chk.get("Interval"):
        raise ServiceDefError(f"Check {check_id}: Interval must be > 0 for a {kind} check")
    definition = {k: chk[k] for k in ("HTTP", "Method", "Header", "Body", "TCP", "TLSSkipVerify",
                                      "TLSServerName", "Interval", "Timeout", "TTL", "AliasService",
                                      "AliasNode", "GRPC", "DeregisterCriticalServiceAfter") if k in chk}
    status = chk.get("Status") or "critical"
    if status not in ("passing", "warning", "critical"):
        raise ServiceDefError(f"Check {check_id}.Status: must be passing, warning or critical, not {status!r}")
    return {
        "Node": node,
        "CheckID": check_id,
        "Name": chk.get("Name") or default_name,
        "Status": status,
        "Notes": chk.get("Notes") or "",
        "Output": "",
        "ServiceID": service["ID"] if service else "",
        "ServiceName": service["Service"] if service else "",
        "ServiceTags": list(service["Tags"]) if service else [],
        "Type": kind,
        "Interval": chk.get("Interval") or "",
        "Timeout": chk.get("Timeout") or "",
        "ExposedPort": 0,
        "Definition": definition,
    }


def agent_check(chk: dict[str, Any], service: dict[str, Any] | None, node: str) -> dict[str, Any]:
    """A normalized /v1/agent/check/register definition → its HealthCheck document (ID = Name
    unless given). Raises ServiceDefError naming what is wrong."""
    if not chk.get("Name"):
        raise ServiceDefError("Missing check name")
    return _check_doc(chk, chk.get("CheckID") or chk.get("ID") or chk["Name"], chk["Name"], service, node)


def service_checks(svc: dict[str, Any], doc: dict[str, Any], node: str) -> list[dict[str, Any]]:
    """The checks of a normalized definition, with Consul's IDs: `service:<id>` for a single
    check, `service:<id>:<n>` (from 1) for several, unless the check names its own ID."""
    defs = list(svc.get("Checks") or [])
    if svc.get("Check"):
        defs.insert(0, svc["Check"])
    out = []
    for n, chk in enumerate(defs, start=1):
        check_id = chk.get("CheckID") or chk.get("ID") or (
            f"service:{doc['ID']}" if len(defs) == 1 else f"service:{doc['ID']}:{n}")
        out.append(_check_doc(chk, check_id, f"Service '{doc['Service']}' check", doc, node))
    return out


def sidecar_definition(parent: dict[str, Any], parent_doc: dict[str, Any], used_ports: set[int]) -> dict[str, Any]:
    """Consul's defaults for `Connect.SidecarService` (agent/sidecar_service.go)."""
    sidecar = copy.deepcopy(parent["Connect"]["SidecarService"])
    if "Connect" in sidecar:
        raise ServiceDefError("Connect.SidecarService.Connect: a sidecar cannot have its own sidecar")
    if sidecar.get("Kind") not in (None, "", "connect-proxy"):
        raise ServiceDefError("Connect.SidecarService.Kind: must be connect-proxy")
    sidecar["Kind"] = "connect-proxy"
    sidecar.setdefault("ID", parent_doc["ID"] + SIDECAR_SUFFIX)
    sidecar.setdefault("Name", parent_doc["Service"] + SIDECAR_SUFFIX)
    if not sidecar.get("Tags"):
        sidecar["Tags"] = list(parent_doc["Tags"])
    if not sidecar.get("Meta"):
        sidecar["Meta"] = dict(parent_doc["Meta"])
    if not sidecar.get("Port"):
        free = [p for p in range(SIDECAR_PORT_MIN, SIDECAR_PORT_MAX + 1) if p not in used_ports]
        if not free:
            raise ServiceDefError(
                f"Connect.SidecarService.Port: no port free in {SIDECAR_PORT_MIN}-{SIDECAR_PORT_MAX}")
        sidecar["Port"] = free[0]
    proxy = sidecar.setdefault("Proxy", {})
    proxy.setdefault("DestinationServiceName", parent_doc["Service"])
    proxy.setdefault("DestinationServiceID", parent_doc["ID"])
    proxy.setdefault("LocalServiceAddress", "127.0.0.1")
    proxy.setdefault("LocalServicePort", parent_doc["Port"])
    if not sidecar.get("Checks") and not sidecar.get("Check"):
        address = sidecar.get("Address") or "127.0.0.1"
        sidecar["Checks"] = [
            {"Name": "Connect Sidecar Listening", "TCP": f"{address}:{sidecar['Port']}", "Interval": "10s"},
            {"Name": f"Connect Sidecar Aliasing {parent_doc['ID']}", "AliasService": parent_doc["ID"]},
        ]
    return sidecar


def expand(svc: dict[str, Any], datacenter: str, node: str, used_sidecar_ports: set[int]) -> Expanded:
    """A normalized definition → the services and checks to store (sidecar included)."""
    parent = agent_service(svc, datacenter)
    services, checks = [parent], service_checks(svc, parent, node)
    if (svc.get("Connect") or {}).get("SidecarService") is not None:
        side_def = sidecar_definition(svc, parent, used_sidecar_ports)
        side = agent_service(side_def, datacenter)
        side["_SidecarOf"] = parent["ID"]  # private: deregistering the parent removes it (Consul does)
        services.append(side)
        checks += service_checks(side_def, side, node)
    return Expanded(services=services, checks=checks)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document without the agent's private bookkeeping keys (`_...`)."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}

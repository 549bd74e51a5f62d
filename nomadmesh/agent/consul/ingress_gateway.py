"""The `ingress-gateway` config entry: from a Nomad job, and as Consul validates it. Pure.

Nomad writes one `ingress-gateway` entry per gateway service of a job when the job is registered
(job_endpoint.go: every register re-writes it; stopping the job leaves it), converted from the
jobspec's `gateway { ingress { ... } }` block (nomad/consul.go convertIngressCE). `entries_from_job`
does the same conversion; `normalize` is what PUT /v1/config applies to an entry of this kind:
keys folded to Go spelling (Consul's decoder takes any case and snake_case) and Consul's
IngressGatewayConfigEntry.Validate, with its wording. What the agent's gateway does not
implement (TLS, header rewrites, the wildcard service, listeners other than tcp and http) is
refused with a message saying so, never stored and ignored.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

KIND = "ingress-gateway"
PROTOCOLS = ("tcp", "http", "http2", "grpc")  # Consul's
IMPLEMENTED = ("tcp", "http")  # the agent's builders (resources/ingress.py)
WILDCARD = "*"

_TOP = {"kind": "Kind", "name": "Name", "namespace": "Namespace", "partition": "Partition", "meta": "Meta",
        "tls": "TLS", "listeners": "Listeners", "defaults": "Defaults"}
_LISTENER = {"port": "Port", "protocol": "Protocol", "services": "Services", "tls": "TLS"}
_SERVICE = {"name": "Name", "hosts": "Hosts", "namespace": "Namespace", "partition": "Partition", "tls": "TLS",
            "requestheaders": "RequestHeaders", "responseheaders": "ResponseHeaders",
            "maxconnections": "MaxConnections", "maxpendingrequests": "MaxPendingRequests",
            "maxconcurrentrequests": "MaxConcurrentRequests", "passivehealthcheck": "PassiveHealthCheck"}
# Fields Consul has that the agent's gateway does not implement: refused unless empty.
_UNIMPLEMENTED = ("Defaults", "RequestHeaders", "ResponseHeaders", "MaxConnections", "MaxPendingRequests",
                  "MaxConcurrentRequests", "PassiveHealthCheck")


class IngressError(ValueError):
    """The entry is refused; the message is the one line the API answers with (status 400)."""


def _fold(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _rename(raw: Any, names: dict[str, str], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise IngressError(f"Request decoding failed: {where or 'entry'} must be an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = names.get(_fold(str(key)))
        if name is None:
            raise IngressError(f'Request decoding failed: invalid config key "{where}{key}"')
        out[name] = value
    return out


def _tls_enabled(tls: Any) -> bool:
    return isinstance(tls, dict) and any(_fold(str(k)) == "enabled" and v for k, v in tls.items())


def _tls_empty(tls: Any) -> bool:
    return tls in (None, {}) or (isinstance(tls, dict) and not any(v for v in tls.values()))


def normalize(entry: dict[str, Any]) -> dict[str, Any]:
    """A decoded `ingress-gateway` entry with Go key spelling, validated; IngressError if refused."""
    out = _rename(entry, _TOP, "")
    if _tls_enabled(out.get("TLS")):
        raise IngressError("TLS: gateway TLS is not supported by this agent (listeners are plaintext)")
    if out.get("Defaults"):
        raise IngressError("Defaults: not supported by this agent")
    listeners = []
    raw_listeners = out.get("Listeners") or []
    if not isinstance(raw_listeners, list):
        raise IngressError("Listeners: must be a list")
    for i, raw in enumerate(raw_listeners):
        listener = _rename(raw, _LISTENER, f"Listeners[{i}].")
        if not _tls_empty(listener.get("TLS")):
            raise IngressError(f"Listeners[{i}].TLS: gateway TLS is not supported by this agent")
        port, protocol = listener.get("Port"), listener.get("Protocol") or "tcp"
        if isinstance(port, bool) or not isinstance(port, int):
            raise IngressError(f"Listeners[{i}].Port: must be an integer")
        services = []
        for j, raw_svc in enumerate(listener.get("Services") or []):
            svc = _rename(raw_svc, _SERVICE, f"Listeners[{i}].Services[{j}].")
            for key in (*_UNIMPLEMENTED, "TLS"):
                if key in svc and not _tls_empty(svc[key]):
                    raise IngressError(f"Listeners[{i}].Services[{j}].{key}: not supported by this agent")
            hosts = svc.get("Hosts") or []
            if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
                raise IngressError(f"Listeners[{i}].Services[{j}].Hosts: must be a list of strings")
            services.append({"Name": str(svc.get("Name") or ""), "Hosts": hosts or None})
        listeners.append({"Port": port, "Protocol": str(protocol).lower(), "Services": services})
    result = {k: v for k, v in out.items() if k in ("Kind", "Name", "Namespace", "Partition", "Meta")}
    result.update({"TLS": {"Enabled": False}, "Listeners": listeners})
    problem = validate(result)
    if problem:
        raise IngressError(problem)
    return result


def validate(entry: dict[str, Any]) -> str | None:
    """Consul's IngressGatewayConfigEntry.Validate (first problem, its wording), then the agent's limits."""
    declared: set[int] = set()
    for listener in entry.get("Listeners") or []:
        port, protocol, services = listener["Port"], listener["Protocol"], listener["Services"]
        if port in declared:
            return f"port {port} declared on two listeners"
        declared.add(port)
        if protocol not in PROTOCOLS:
            return f"protocol must be 'tcp', 'http', 'http2', or 'grpc'. '{protocol}' is an unsupported protocol"
        if not services:
            return f"No service declared for listener with port {port}"
        if protocol == "tcp" and len(services) > 1:
            return ("Multiple services per listener are only supported for L7 protocols, 'http', 'grpc' and "
                    f"'http2' (listener on port {port})")
        names: set[str] = set()
        hosts: set[str] = set()
        for svc in services:
            name, svc_hosts = svc["Name"], svc["Hosts"] or []
            if protocol == "tcp":
                if name == WILDCARD:
                    return f"Wildcard service name is only valid for protocol = 'http' (listener on port {port})"
                if svc_hosts:
                    return (f"Associating hosts to a service is not supported for the {protocol} protocol "
                            f"(listener on port {port})")
            if not name:
                return f"Service name cannot be blank (listener on port {port})"
            if name == WILDCARD and svc_hosts:
                return f"Associating hosts to a wildcard service is not supported (listener on port {port})"
            if name in names:
                return f"Service {name} cannot be added multiple times (listener on port {port})"
            names.add(name)
            for h in svc_hosts:
                if h in hosts:
                    return f"Hosts must be unique within a specific listener (listener on port {port})"
                hosts.add(h)
        if not 1 <= port <= 65535:
            return f"Listeners: port {port} is not a valid port (1-65535)"
        if protocol not in IMPLEMENTED:
            return f"protocol '{protocol}' (listener on port {port}) is not supported by this agent: use tcp or http"
        if WILDCARD in names:
            return f"Wildcard service (listener on port {port}) is not supported by this agent: name each service"
    return None


def entries_from_job(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The `ingress-gateway` entries Nomad writes to Consul when `job` is registered."""
    out = []
    for tg in job.get("TaskGroups") or []:
        for svc in tg.get("Services") or []:
            ingress = (((svc.get("Connect") or {}).get("Gateway")) or {}).get("Ingress")
            if ingress is None:
                continue
            listeners = [{"Port": int(lst.get("Port") or 0), "Protocol": lst.get("Protocol") or "tcp",
                          "Services": [{"Name": s.get("Name") or "", "Hosts": list(s.get("Hosts") or []) or None}
                                       for s in lst.get("Services") or []]}
                         for lst in ingress.get("Listeners") or []]
            out.append({"Kind": KIND, "Name": svc["Name"], "TLS": {"Enabled": False}, "Listeners": listeners})
    return out


def protocol_conflict(entries: list[dict[str, Any]], protocol_of: Callable[[str], str],
                      has_l7_chain: Callable[[str], bool]) -> str | None:
    """Consul's refusal text if a listener's protocol differs from a listed service's protocol
    (service-defaults, else proxy-defaults, else tcp), whichever entry is written last. A tcp
    listener may front a non-tcp service whose discovery chain is a plain resolver
    (`has_l7_chain(service)` False: no service-router or service-splitter), as Consul allows."""
    for entry in entries:
        for listener in entry.get("Listeners") or []:
            expected = listener.get("Protocol") or "tcp"
            for svc in listener.get("Services") or []:
                name = svc.get("Name") or ""
                if name == WILDCARD:
                    continue
                proto = protocol_of(name)
                if proto != expected and (expected != "tcp" or has_l7_chain(name)):
                    return (f'service "{name}" has protocol "{proto}", which does not match defined listener '
                            f'protocol "{expected}"')
    return None

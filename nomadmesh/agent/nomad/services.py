"""An allocation's Consul service registrations, as Nomad's Consul integration builds them. Pure.

IDs follow Nomad (`_nomad-task-<alloc>-group-<group>-<service>-<portlabel>` for group services,
`_nomad-task-<alloc>-<task>-<service>-<portlabel>` for task services). The service address is the
host's (127.0.0.1) and the port is the host side of the port mapping, so checks and callers reach
bridge-mode allocations through their mapped ports too. A canary (DeploymentStatus.Canary) registers
its service's `canary_tags` instead of `tags` and `canary_meta` instead of `meta` when they are set
(Nomad's service client: canary_meta replaces meta, it is not merged); once promoted it is
registered again with the normal ones. Tags and meta values are interpolated as Nomad's
interpolateServices does, with the allocation's variables (`${NOMAD_HOST_PORT_<label>}`,
`${NOMAD_ALLOC_ID}`, ...): e.g. the host port a sidecar's metrics listener is published on, for
Prometheus' Consul service discovery.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.agent.nomad import connect_hook, ingress_hook
from nomadmesh.agent.runtime import env as rt_env
from nomadmesh.durations import go_duration

HOST_IP = "127.0.0.1"


def check_duration(ns: int | float | str | None, default: str = "10s") -> str:
    """A check's interval or timeout (nanoseconds) as Nomad hands it to Consul: Go's Duration.String()
    ("2s", "500ms", "1m30s"); unset or zero is `default`."""
    if ns is None or ns == 0:
        return default
    if isinstance(ns, str):
        return ns
    return go_duration(int(ns))


def port_map(alloc: dict[str, Any]) -> dict[str, int]:
    """Port label -> host port of an allocation."""
    ports = ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []
    return {p["Label"]: int(p["Value"]) for p in ports}


def _resolve_port(label: str | None, ports: dict[str, int]) -> int:
    if not label:
        return 0
    if label in ports:
        return ports[label]
    if str(label).isdigit():  # Nomad allows a literal port number as port label
        return int(label)
    raise ValueError(f"port label {label!r} not found in the group's network block")


def _check(svc_id: str, svc: dict[str, Any], chk: dict[str, Any], ports: dict[str, int],
           svc_port: int) -> dict[str, Any] | None:
    kind = (chk.get("Type") or "").lower()
    port = _resolve_port(chk.get("PortLabel"), ports) if chk.get("PortLabel") else svc_port
    exposed = connect_hook.check_port_label(svc, chk)
    if exposed is not None and exposed in ports:
        # `expose = true`: the check reaches the app through its sidecar's expose listener.
        port = ports[exposed]
    name = chk.get("Name") or f'service: "{svc["Name"]}" check'
    out: dict[str, Any] = {
        "CheckID": f"{svc_id}-{_slug(name)}",
        "Name": name,
        "Interval": check_duration(chk.get("Interval"), "10s"),
        "Timeout": check_duration(chk.get("Timeout"), "2s"),
        "ServiceID": svc_id,
    }
    if kind == "http":
        proto = chk.get("Protocol") or "http"
        path = chk.get("Path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        out["HTTP"] = f"{proto}://{HOST_IP}:{port}{path}"
        if chk.get("Method"):
            out["Method"] = chk["Method"]
    elif kind == "tcp":
        out["TCP"] = f"{HOST_IP}:{port}"
    else:
        return None  # script/grpc checks are not run by the dev agent's catalog
    return out


def service_env(alloc: dict[str, Any]) -> dict[str, str]:
    """The allocation's variables a group service's fields may use (Nomad's taskenv without a task)."""
    ports = ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []
    job = alloc.get("Job") or {}
    env = rt_env.port_env(rt_env.Port(p["Label"], int(p["Value"]), int(p.get("To") or 0), HOST_IP) for p in ports)
    name = str(alloc.get("Name") or "")
    return {**env, "NOMAD_ALLOC_ID": alloc["ID"], "NOMAD_SHORT_ALLOC_ID": alloc["ID"][:8], "NOMAD_ALLOC_NAME": name,
            "NOMAD_ALLOC_INDEX": str(rt_env.alloc_index(name)), "NOMAD_GROUP_NAME": str(alloc.get("TaskGroup") or ""),
            "NOMAD_JOB_ID": str(job.get("ID") or ""), "NOMAD_JOB_NAME": str(job.get("Name") or ""),
            "NOMAD_NAMESPACE": str(alloc.get("Namespace") or "default")}


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")[:40] or "check"


def registrations(alloc: dict[str, Any]) -> list[dict[str, Any]]:
    """Consul /v1/agent/service/register bodies for every consul-provider service of the alloc."""
    job = alloc["Job"]
    tg = next(g for g in job["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
    ports = port_map(alloc)
    found: list[tuple[str, dict[str, Any]]] = [(f"group-{tg['Name']}", s) for s in tg.get("Services") or []]
    for task in tg.get("Tasks") or []:
        found += [(task["Name"], s) for s in task.get("Services") or []]
    canary = bool((alloc.get("DeploymentStatus") or {}).get("Canary"))
    env = service_env(alloc)
    out = []
    for owner, svc in found:
        if (svc.get("Provider") or "consul") != "consul":
            continue
        label = svc.get("PortLabel") or ""
        svc_id = f"_nomad-task-{alloc['ID']}-{owner}-{svc['Name']}-{label}"
        port = _resolve_port(label, ports)
        tags = svc.get("CanaryTags") if canary and svc.get("CanaryTags") else svc.get("Tags")
        meta = svc.get("CanaryMeta") if canary and svc.get("CanaryMeta") else svc.get("Meta")
        reg: dict[str, Any] = {
            "ID": svc_id,
            "Name": svc["Name"],
            "Tags": [rt_env.interpolate(str(t), env) for t in tags or []],
            "Address": HOST_IP,
            "Port": port,
            "Meta": {**{k: rt_env.interpolate(str(v), env) for k, v in (meta or {}).items()},
                     "external-source": "nomad"},
            "Checks": [c for c in (_check(svc_id, svc, chk, ports, port)
                                   for chk in svc.get("Checks") or []) if c],
        }
        if svc in ingress_hook.ingress_services(tg):
            reg["Kind"] = ingress_hook.SERVICE_KIND
            reg["Proxy"] = ingress_hook.registration_proxy(svc)
        sidecar = connect_hook.sidecar_registration(alloc, svc, svc_id)
        if sidecar is not None and not ((svc.get("Connect") or {}).get("SidecarService") or {}).get("Tags"):
            sidecar["Tags"] = list(reg["Tags"])  # the sidecar takes the tags its service registers
        if sidecar is not None:
            reg["Connect"] = {"SidecarService": sidecar}
        out.append(reg)
    return out

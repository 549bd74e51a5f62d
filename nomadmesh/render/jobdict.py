"""A service as the Job JSON Nomad's HTTP API takes (`POST /v1/jobs` body is `{"Job": ...}`).

Keys are Go field names and durations integer nanoseconds (consul-nomad-facts.md §3). Only what
the model states is filled in; Nomad canonicalizes the rest on register, as it does for HCL.
"""
from __future__ import annotations

from typing import Any

from nomadmesh.render.durations import duration_ns
from nomadmesh.render.view import JobView, job_view
from nomadmesh.spec.model import Project, Service


def job_dict(service: Service, project: Project) -> dict[str, Any]:
    return job_dict_from_view(job_view(service, project))


def job_dict_from_view(v: JobView) -> dict[str, Any]:
    s, p = v.service, v.project
    return {
        "ID": s.name,
        "Name": s.name,
        "Type": "service",
        "Datacenters": list(p.datacenters),
        "Region": p.region,
        "Namespace": p.namespace,
        "Meta": dict(v.meta),
        "TaskGroups": [_group(v)],
    }


def _group(v: JobView) -> dict[str, Any]:
    s, run = v.service, v.service.run
    network: dict[str, Any] = {"Mode": "bridge"}
    for pm in v.port_maps:
        port = {"Label": pm.label, "Value": pm.static or 0, "To": pm.to}
        network.setdefault("ReservedPorts" if pm.static else "DynamicPorts", []).append(port)
    u, r = run.update, run.restart
    return {
        "Name": s.name,
        "Count": run.count,
        "Networks": [network],
        "Services": [_service(v)],
        **({} if s.is_gateway else {"Tasks": [_task(v)]}),  # a gateway's task is Nomad's to inject
        "Update": {
            "MaxParallel": u.max_parallel,
            "HealthCheck": u.health_check,
            "MinHealthyTime": duration_ns(u.min_healthy_time),
            "HealthyDeadline": duration_ns(u.healthy_deadline),
            "ProgressDeadline": duration_ns(u.progress_deadline),
            "AutoRevert": u.auto_revert,
            "Canary": u.canary,
        },
        "RestartPolicy": {
            "Attempts": r.attempts,
            "Interval": duration_ns(r.interval),
            "Delay": duration_ns(r.delay),
            "Mode": r.mode,
        },
    }


def _service(v: JobView) -> dict[str, Any]:
    s = v.service
    out: dict[str, Any] = {"Name": s.name, "PortLabel": v.service_port}
    if s.tags:
        out["Tags"] = list(s.tags)
    if s.meta:
        out["Meta"] = dict(s.meta)
    checks = []
    for check, expose in v.checks:
        c: dict[str, Any] = {
            "Name": check.name,
            "Type": check.type,
            "Interval": duration_ns(check.interval),
            "Timeout": duration_ns(check.timeout),
        }
        if check.path is not None:
            c["Path"] = check.path
        if expose:
            c["Expose"] = True
        checks.append(c)
    if checks:
        out["Checks"] = checks
    if s.is_gateway:
        out["Connect"] = {"Gateway": {"Ingress": {"Listeners": [
            {"Port": lst.port, "Protocol": lst.protocol,
             "Services": [{"Name": t.name, **({"Hosts": list(t.hosts)} if t.hosts else {})} for t in lst.services]}
            for lst in s.ingress]}}}
    elif s.connect:
        upstreams = []
        for up in s.upstreams:
            u: dict[str, Any] = {"DestinationName": up.destination_name, "LocalBindPort": up.local_bind_port}
            if up.local_bind_address != "127.0.0.1":
                u["LocalBindAddress"] = up.local_bind_address
            if up.datacenter is not None:
                u["Datacenter"] = up.datacenter
            upstreams.append(u)
        # An empty sidecar_service {} in HCL has no proxy block; mirror that here.
        out["Connect"] = {"SidecarService": {"Proxy": {"Upstreams": upstreams}} if upstreams else {}}
    return out


def _task(v: JobView) -> dict[str, Any]:
    run = v.service.run
    return {
        "Name": v.service.name,
        "Driver": run.driver,
        "Config": {k: list(val) if isinstance(val, tuple) else val for k, val in v.config},
        "Env": dict(v.env),
        "Resources": {"CPU": run.resources.cpu, "MemoryMB": run.resources.memory},
    }

"""`canonicalize(job)`: Nomad's defaults, as api/*.go `Canonicalize` and the server apply them.

Ported from Nomad's api package (jobs.go, tasks.go, services.go, consul.go, resources.go) plus the
server-side defaults a registered job shows (Datacenters ["*"], NodePool "default", port
HostNetwork "default", network Mode "host"). Notable ones:
- service jobs get the default update strategy even without an `update` block, and every group
  inherits the job's update block merged with its own, so they get deployments;
- restart: service/system 2 attempts in 30m, 15s delay, mode fail; batch 3 in 24h;
- reschedule: service unlimited exponential from 30s up to 1h; batch 1 in 24h, 5s constant;
- resources 100 MHz / 300 MB; kill_timeout 5s; logs 10 × 10 MB; ephemeral disk 300 MB;
- services: AddressMode auto, Provider consul, OnUpdate require_healthy, name `<job>-<group>[-<task>]`.
Connect sidecar tasks are *not* injected here: the scheduler does that, as Nomad's job hooks do.

Afterwards every field of the schema is present: unset pointer/map/slice fields are None, Go
value fields have their zero value. Idempotent; returns a new dict.
"""
from __future__ import annotations

import copy
import posixpath
from typing import Any

from nomadmesh.jobspec.schema import OBJECTS

_S = 1_000_000_000
_MIN = 60 * _S
_H = 60 * _MIN


def default_update() -> dict[str, Any]:
    return {"Stagger": 30 * _S, "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * _S,
            "HealthyDeadline": 5 * _MIN, "ProgressDeadline": 10 * _MIN, "Canary": 0, "AutoRevert": False,
            "AutoPromote": False}


def default_restart(job_type: str) -> dict[str, Any]:
    if job_type in ("service", "system"):
        return {"Interval": 30 * _MIN, "Attempts": 2, "Delay": 15 * _S, "Mode": "fail", "RenderTemplates": False}
    return {"Interval": 24 * _H, "Attempts": 3, "Delay": 15 * _S, "Mode": "fail", "RenderTemplates": False}


def default_reschedule(job_type: str) -> dict[str, Any]:
    if job_type == "service":
        return {"Attempts": 0, "Interval": 0, "Delay": 30 * _S, "DelayFunction": "exponential",
                "MaxDelay": _H, "Unlimited": True}
    if job_type == "batch":
        return {"Attempts": 1, "Interval": 24 * _H, "Delay": 5 * _S, "DelayFunction": "constant",
                "MaxDelay": 0, "Unlimited": False}
    return {"Attempts": 0, "Interval": 0, "Delay": 0, "DelayFunction": "", "MaxDelay": 0, "Unlimited": False}


def default_migrate() -> dict[str, Any]:
    return {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * _S, "HealthyDeadline": 5 * _MIN}


def default_resources() -> dict[str, Any]:
    return {"CPU": 100, "Cores": 0, "MemoryMB": 300, "MemoryMaxMB": 0}


def default_logs() -> dict[str, Any]:
    return {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False}


def canonicalize(job: dict[str, Any]) -> dict[str, Any]:
    """A copy of `job` with Nomad's defaults filled in and every schema field present."""
    j = copy.deepcopy(job)
    _defaults(j, {"ID": "", "ParentID": "", "Namespace": "default", "Priority": 50, "Stop": False,
                  "Region": "global", "Type": "service", "AllAtOnce": False, "NodePool": "default",
                  "ConsulToken": "", "ConsulNamespace": "", "VaultToken": "", "VaultNamespace": "",
                  "NomadTokenID": "", "Status": "", "StatusDescription": "", "Stable": False, "Version": 0,
                  "CreateIndex": 0, "ModifyIndex": 0, "JobModifyIndex": 0})
    _defaults(j, {"Name": j["ID"]})
    if not j.get("Datacenters"):
        j["Datacenters"] = ["*"]
    if j.get("Update") is not None:
        _defaults(j["Update"], default_update())
    elif j["Type"] == "service":
        j["Update"] = default_update()
    if j.get("ParameterizedJob") is not None:
        _defaults(j["ParameterizedJob"], {"Payload": "optional"})  # Nomad's DispatchPayloadOptional
    for group in j.get("TaskGroups") or []:
        _group(group, j)
    _affinities(j, *(j.get("TaskGroups") or []), *(t for g in j.get("TaskGroups") or [] for t in g.get("Tasks") or []))
    _fill("Job", j)
    return j


def _affinities(*owners: dict[str, Any]) -> None:
    """api.Affinity.Canonicalize: a weight of 50 unless given."""
    for owner in owners:
        for affinity in owner.get("Affinities") or []:
            _defaults(affinity, {"Weight": 50})


def _defaults(obj: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Set each default where the field is missing or None (a nil pointer in Go)."""
    for key, value in defaults.items():
        if obj.get(key) is None:
            obj[key] = copy.deepcopy(value)


def _none_if_empty(obj: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in obj and not obj[key]:
            obj[key] = None


def _is_empty_update(update: dict[str, Any]) -> bool:
    return not any(update.get(k) for k in default_update())


def _group(g: dict[str, Any], job: dict[str, Any]) -> None:
    job_type = job["Type"]
    _defaults(g, {"Name": "", "Count": 1})
    g["EphemeralDisk"] = g.get("EphemeralDisk") or {}
    _defaults(g["EphemeralDisk"], {"Sticky": False, "Migrate": False, "SizeMB": 300})

    job_update = job.get("Update")
    if job_update is not None and g.get("Update") is not None:
        merged = copy.deepcopy(job_update)
        merged.update({k: v for k, v in g["Update"].items() if v is not None})
        g["Update"] = merged
    elif job_update is not None and not _is_empty_update(job_update):
        g["Update"] = copy.deepcopy(job_update)
    if g.get("Update") is not None:
        _defaults(g["Update"], default_update())

    policy = copy.deepcopy(job.get("Reschedule")) if job.get("Reschedule") is not None else None
    if g.get("ReschedulePolicy") is not None:
        policy = {**(policy or {}), **{k: v for k, v in g["ReschedulePolicy"].items() if v is not None}}
    if policy is None and job_type not in ("system", "sysbatch"):
        policy = {}
    if policy is not None:
        _defaults(policy, default_reschedule(job_type))
    g["ReschedulePolicy"] = policy

    migrate = copy.deepcopy(job.get("Migrate")) if job.get("Migrate") is not None else None
    if g.get("Migrate") is not None:
        migrate = {**(migrate or {}), **{k: v for k, v in g["Migrate"].items() if v is not None}}
    if migrate is None and job_type == "service":
        migrate = {}
    if migrate is not None:
        _defaults(migrate, default_migrate())
    g["Migrate"] = migrate

    restart = default_restart(job_type)
    restart.update({k: v for k, v in (g.get("RestartPolicy") or {}).items() if v is not None})
    g["RestartPolicy"] = restart

    for task in g.get("Tasks") or []:
        _task(task, g, job)
    for network in g.get("Networks") or []:
        _network(network)
    for service in g.get("Services") or []:
        _service(service, None, g, job)


def _network(n: dict[str, Any]) -> None:
    if not n.get("Mode"):
        n["Mode"] = "host"
    _none_if_empty(n, "ReservedPorts", "DynamicPorts")
    for port in (n.get("ReservedPorts") or []) + (n.get("DynamicPorts") or []):
        _defaults(port, {"Value": 0, "To": 0})
        if not port.get("HostNetwork"):
            port["HostNetwork"] = "default"


def _resources(r: dict[str, Any] | None) -> dict[str, Any]:
    r = r if r is not None else {}
    if r.get("Cores") is None:
        r["Cores"] = 0
        _defaults(r, {"CPU": 100})
    _defaults(r, {"CPU": 0, "MemoryMB": 300, "MemoryMaxMB": 0})
    return r


def _logs(lc: dict[str, Any] | None) -> dict[str, Any]:
    lc = lc if lc is not None else {}
    _defaults(lc, default_logs())
    return lc


def _task(t: dict[str, Any], g: dict[str, Any], job: dict[str, Any]) -> None:
    t["Resources"] = _resources(t.get("Resources"))
    _defaults(t, {"KillTimeout": 5 * _S})
    t["LogConfig"] = _logs(t.get("LogConfig"))
    if t.get("Vault") is not None:  # api.Vault.Canonicalize
        _defaults(t["Vault"], {"Env": True, "DisableFile": False, "Namespace": "", "ChangeMode": "restart",
                               "ChangeSignal": "SIGHUP", "AllowTokenExpiration": False})
        t["Vault"]["Cluster"] = t["Vault"].get("Cluster") or "default"
    for artifact in t.get("Artifacts") or []:
        _artifact(artifact)
    for template in t.get("Templates") or []:
        _template(template)
    for mount in t.get("VolumeMounts") or []:
        _defaults(mount, {"PropagationMode": "private"})  # api.VolumeMount.Canonicalize
    for service in t.get("Services") or []:
        _service(service, t, g, job)
    restart = copy.deepcopy(g["RestartPolicy"])
    restart.update({k: v for k, v in (t.get("RestartPolicy") or {}).items() if v is not None})
    t["RestartPolicy"] = restart


def _artifact(a: dict[str, Any]) -> None:
    _defaults(a, {"GetterMode": "any", "GetterInsecure": False, "GetterSource": ""})
    _none_if_empty(a, "GetterOptions", "GetterHeaders")
    if a.get("RelativeDest") is None:
        if a["GetterMode"] == "file":
            a["RelativeDest"] = posixpath.join("local", posixpath.basename(a["GetterSource"]))
        else:
            a["RelativeDest"] = "local/"


def _template(tmpl: dict[str, Any]) -> None:
    _defaults(tmpl, {"SourcePath": "", "DestPath": "", "EmbeddedTmpl": "", "ChangeMode": "restart"})
    if tmpl.get("ChangeSignal") is None:
        tmpl["ChangeSignal"] = "SIGHUP" if tmpl["ChangeMode"] == "signal" else ""
    else:
        tmpl["ChangeSignal"] = tmpl["ChangeSignal"].upper()
    _defaults(tmpl, {"Once": False, "Splay": 5 * _S, "Perms": "0644", "LeftDelim": "{{", "RightDelim": "}}",
                     "Envvars": False, "ErrMissingKey": False, "VaultGrace": 0})


def _service(s: dict[str, Any], t: dict[str, Any] | None, g: dict[str, Any], job: dict[str, Any]) -> None:
    if not s.get("Name"):
        s["Name"] = f'{job["Name"]}-{g["Name"]}-{t["Name"]}' if t is not None else f'{job["Name"]}-{g["Name"]}'
    for key, value in (("AddressMode", "auto"), ("OnUpdate", "require_healthy"), ("Provider", "consul"),
                       ("Cluster", "default")):
        if not s.get(key):
            s[key] = value
    _none_if_empty(s, "Meta", "CanaryMeta", "TaggedAddresses")
    connect = s.get("Connect")
    if connect is not None:
        _connect(connect)
    for check in s.get("Checks") or []:
        restart = _merge_check_restart(s.get("CheckRestart"), check.get("CheckRestart"))
        if restart is not None:
            _defaults(restart, {"Grace": _S})
        check["CheckRestart"] = restart
        for key in ("SuccessBeforePassing", "FailuresBeforeCritical", "FailuresBeforeWarning"):
            if (check.get(key) or 0) < 0:
                check[key] = 0
        if not check.get("OnUpdate"):
            check["OnUpdate"] = s["OnUpdate"]


def _merge_check_restart(base: dict[str, Any] | None, other: dict[str, Any] | None) -> dict[str, Any] | None:
    if base is None:
        return copy.deepcopy(other)
    merged = copy.deepcopy(base)
    if other is None:
        return merged
    if (other.get("Limit") or 0) > 0:
        merged["Limit"] = other["Limit"]
    if other.get("Grace") is not None:
        merged["Grace"] = other["Grace"]
    if other.get("IgnoreWarnings"):
        merged["IgnoreWarnings"] = True
    return merged


def _connect(c: dict[str, Any]) -> None:
    sidecar = c.get("SidecarService")
    if sidecar is not None:
        _none_if_empty(sidecar, "Tags", "Meta")
        proxy = sidecar.get("Proxy")
        if proxy is not None:
            _none_if_empty(proxy, "Upstreams", "Config")
            if proxy.get("Expose") is not None:
                _none_if_empty(proxy["Expose"], "Paths")
            for upstream in proxy.get("Upstreams") or []:
                _none_if_empty(upstream, "Config")
    gateway = c.get("Gateway")
    if gateway is not None:
        _gateway(gateway)
    task = c.get("SidecarTask")
    if task is not None:
        _none_if_empty(task, "Config", "Env", "Meta")
        task["Resources"] = _resources(task.get("Resources"))
        task["LogConfig"] = _logs(task.get("LogConfig"))
        _defaults(task, {"KillTimeout": 5 * _S, "ShutdownDelay": 0})


def _gateway(g: dict[str, Any]) -> None:
    """Nomad's api ConsulGateway.Canonicalize: proxy connect timeout 5s, listener protocol tcp."""
    proxy = g.get("Proxy")
    if proxy is not None:
        _defaults(proxy, {"ConnectTimeout": 5 * _S})
        _none_if_empty(proxy, "EnvoyGatewayBindAddresses", "Config")
    ingress = g.get("Ingress")
    if ingress is not None:
        _none_if_empty(ingress, "Listeners")
        for listener in ingress.get("Listeners") or []:
            if not listener.get("Protocol"):
                listener["Protocol"] = "tcp"
            _none_if_empty(listener, "Services")
            for service in listener.get("Services") or []:
                _none_if_empty(service, "Hosts")


def _fill(obj: str, value: dict[str, Any]) -> None:
    """Make every schema field present: Go zero values for value fields, None for the rest."""
    for field in OBJECTS[obj]:
        if field.api not in value:
            value[field.api] = copy.deepcopy(field.zero)
        inner = value[field.api]
        if field.kind == "obj" and isinstance(inner, dict):
            _fill(field.obj or "", inner)
        elif field.kind in ("objs", "omap") and isinstance(inner, (list, dict)):
            for item in inner.values() if isinstance(inner, dict) else inner:
                if isinstance(item, dict):
                    _fill(field.obj or "", item)

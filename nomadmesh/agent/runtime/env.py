"""A task's runtime environment as Nomad builds it (client/taskenv/env.go), as pure functions.

Order of precedence, lowest first, as in Nomad: the host's environment (raw_exec passes it on),
Nomad's own variables (ids, dirs, limits, ports, upstreams, meta), then the task's `env` block,
whose values may themselves interpolate `${NOMAD_...}`.

Port variables for a group network port (`port "http" { to = 8080 }`, host port 23456, host IP I):
    NOMAD_IP_http=I  NOMAD_HOST_IP_http=I  NOMAD_HOST_PORT_http=23456
    NOMAD_ADDR_http=I:23456  NOMAD_HOST_ADDR_http=I:23456
    NOMAD_PORT_http=8080  NOMAD_ALLOC_PORT_http=8080   (the host port when `to` is unset)
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

UPSTREAM_IP = "127.0.0.1"  # Connect sidecars always bind upstream listeners on loopback


@dataclass(frozen=True)
class Port:
    label: str
    value: int  # the host port
    to: int = 0  # the port inside the allocation's network namespace; 0 or -1 means "same as value"
    host_ip: str = "127.0.0.1"


@dataclass(frozen=True)
class Upstream:
    destination_name: str
    local_bind_port: int


@dataclass(frozen=True)
class TaskEnvInput:
    """Everything Nomad knows about a task when it builds its environment."""

    alloc_id: str
    alloc_name: str  # "<job>.<group>[<index>]"
    group: str
    task: str
    job_id: str
    job_name: str
    alloc_dir: str  # host path of <alloc>/alloc
    task_dir: str  # host path of <alloc>/<task>/local
    secrets_dir: str  # host path of <alloc>/<task>/secrets
    namespace: str = "default"
    region: str = "global"
    datacenter: str = "dc1"
    cpu: int = 100
    memory_mb: int = 300
    alloc_index: int | None = None  # None: parsed from alloc_name like Nomad's Allocation.Index()
    ports: tuple[Port, ...] = ()
    upstreams: tuple[Upstream, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)  # job+group+task meta, already combined
    env: Mapping[str, str] = field(default_factory=dict)  # the task's own env block


def clean_env_var(name: str, repl: str = "_") -> str:
    """Nomad's helper.CleanEnvVar: keep [A-Za-z_.] anywhere and digits after the first character."""
    out = []
    for i, c in enumerate(name):
        ok = c in "_." or ("a" <= c <= "z") or ("A" <= c <= "Z") or (i > 0 and "0" <= c <= "9")
        out.append(c if ok else repl)
    return "".join(out)


_INDEX = re.compile(r"\[(\d+)\]$")


def alloc_index(alloc_name: str) -> int:
    m = _INDEX.search(alloc_name)
    return int(m.group(1)) if m else 0


def _join_host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def port_env(ports: Iterable[Port]) -> dict[str, str]:
    env: dict[str, str] = {}
    for p in ports:
        inner = p.to if p.to and p.to > 0 else p.value
        addr = _join_host_port(p.host_ip, p.value)
        env[f"NOMAD_IP_{p.label}"] = p.host_ip
        env[f"NOMAD_HOST_IP_{p.label}"] = p.host_ip
        env[f"NOMAD_HOST_PORT_{p.label}"] = str(p.value)
        env[f"NOMAD_ADDR_{p.label}"] = addr
        env[f"NOMAD_HOST_ADDR_{p.label}"] = addr
        env[f"NOMAD_PORT_{p.label}"] = str(inner)
        env[f"NOMAD_ALLOC_PORT_{p.label}"] = str(inner)
    return env


def upstream_env(upstreams: Iterable[Upstream]) -> dict[str, str]:
    env: dict[str, str] = {}
    for u in upstreams:
        port = str(u.local_bind_port)
        # Nomad sets the raw destination name and a cleaned copy (`-` → `_`) for shells.
        for name in dict.fromkeys((u.destination_name, clean_env_var(u.destination_name))):
            env[f"NOMAD_UPSTREAM_IP_{name}"] = UPSTREAM_IP
            env[f"NOMAD_UPSTREAM_PORT_{name}"] = port
            env[f"NOMAD_UPSTREAM_ADDR_{name}"] = _join_host_port(UPSTREAM_IP, u.local_bind_port)
    return env


_CLEANED_PREFIXES = ("NOMAD_ADDR_", "NOMAD_IP_", "NOMAD_PORT_", "NOMAD_HOST_PORT_", "NOMAD_META_")


def task_env(
    t: TaskEnvInput,
    host_env: Mapping[str, str] | None = None,
    node_attrs: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a task process starts with."""
    env: dict[str, str] = {
        "NOMAD_ALLOC_DIR": t.alloc_dir,
        "NOMAD_TASK_DIR": t.task_dir,
        "NOMAD_SECRETS_DIR": t.secrets_dir,
        "NOMAD_ALLOC_ID": t.alloc_id,
        "NOMAD_SHORT_ALLOC_ID": t.alloc_id[:8],
        "NOMAD_ALLOC_NAME": t.alloc_name,
        "NOMAD_ALLOC_INDEX": str(alloc_index(t.alloc_name) if t.alloc_index is None else t.alloc_index),
        "NOMAD_GROUP_NAME": t.group,
        "NOMAD_TASK_NAME": t.task,
        "NOMAD_JOB_ID": t.job_id,
        "NOMAD_JOB_NAME": t.job_name,
        "NOMAD_NAMESPACE": t.namespace,
        "NOMAD_REGION": t.region,
        "NOMAD_DC": t.datacenter,
    }
    if t.cpu:
        env["NOMAD_CPU_LIMIT"] = str(t.cpu)
    if t.memory_mb:
        env["NOMAD_MEMORY_LIMIT"] = str(t.memory_mb)
    env.update(port_env(t.ports))
    env.update(upstream_env(t.upstreams))
    attrs = dict(node_attrs or {})
    for k, v in t.meta.items():
        env[interpolate(f"NOMAD_META_{k.upper()}", env, attrs)] = interpolate(str(v), env, attrs)
        env[interpolate(f"NOMAD_META_{k}", env, attrs)] = interpolate(str(v), env, attrs)
    # The host's variables never override Nomad's; the task's own env block overrides both.
    for k, v in (host_env or {}).items():
        env.setdefault(k, v)
    for k, v in t.env.items():
        env[k] = interpolate(str(v), env, attrs)
    return {(clean_env_var(k) if k.startswith(_CLEANED_PREFIXES) else k): v for k, v in env.items()}


# `${NAME}` with Nomad's character set, plus HCL2-style `${env.NAME}` and `${env["NAME"]}`.
_VAR = re.compile(r"""\$\{(?:env\[["']([^"'\]]+)["']\]|([a-zA-Z0-9_\-.]+))\}""")


def interpolate(value: str, env: Mapping[str, str], node_attrs: Mapping[str, str] | None = None) -> str:
    """Replace `${NOMAD_x}`, `${env.X}`, `${env["X"]}` and node attributes (`${node.unique.id}`,
    `${attr.x}`, `${meta.x}`); anything unknown is left exactly as written, as Nomad does."""
    attrs = node_attrs or {}

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return env.get(m.group(1), m.group(0))
        name = m.group(2)
        if name in env:
            return env[name]
        if name in attrs:
            return attrs[name]
        if name.startswith("env.") and name[4:] in env:
            return env[name[4:]]
        return m.group(0)

    return _VAR.sub(sub, value)

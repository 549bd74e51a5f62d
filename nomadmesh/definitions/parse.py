"""One parsed `service.json` document → a `Service` and the problems found in that file. Pure.

The document is Consul's agent service definition under `service`, plus nomadmesh's `nomad` key
(how Nomad runs it). Rules that need more than one file (duplicate names, upstreams naming
services that do not exist, cycles) live in `validate.py`.

A file with problems still yields a best-effort `Service` (bad values replaced by defaults) as
long as its name is valid, so the cross-file rules can run too and the user sees every problem
in one go. `port == 0` marks a port that could not be read, or a Connect worker without one.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nomadmesh.definitions.blocks import read_blocks
from nomadmesh.definitions.fields import Obj, Reader, got, join, pick, shown
from nomadmesh.definitions.model import (
    Check,
    IngressListener,
    IngressService,
    Resources,
    Restart,
    Run,
    Service,
    Traffic,
    Update,
    Upstream,
    resolve_work_dir,
)
from nomadmesh.definitions.traffic import parse_traffic
from nomadmesh.durations import parse_ns
from nomadmesh.errors import Problem
from nomadmesh.pack import name_problem

DRIVERS = ("raw_exec", "exec", "docker")
CHECK_TYPES = ("http", "tcp")
HEALTH_CHECKS = ("checks", "task_states", "manual")
RESTART_MODES = ("fail", "delay")
UPSTREAMS_PATH = "service.connect.sidecar_service.proxy.upstreams"

TOP_KEYS = ("service", "nomad", "ingress", "traffic")
# Port labels become NOMAD_PORT_<label> variables in the task, so keep them to identifier characters.
PORT_LABEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
DEFAULT_PORT_LABEL = "http"  # the label the service's own port gets (render/view.py PORT_LABEL)
SERVICE_KEYS = ("name", "id", "tags", "port", "meta", "address", "enable_tag_override", "check", "checks", "connect",
                "kind")
SERVICE_UNSUPPORTED = ("proxy", "tagged_addresses", "weights", "token", "socket_path", "namespace", "partition")
CONNECT_KEYS = ("sidecar_service",)
CONNECT_UNSUPPORTED = ("native", "sidecar_task")
SIDECAR_KEYS = ("port", "proxy")
SIDECAR_UNSUPPORTED = ("name", "id", "tags", "meta", "address", "check", "checks", "kind")
PROXY_KEYS = ("upstreams", "config")
# Consul's proxy config keys: protocol (deploy also writes it as service-defaults), and
# envoy_prometheus_bind_addr (host:port of a listener serving the sidecar's Envoy metrics at /metrics).
PROXY_CONFIG_KEYS = ("protocol", PROMETHEUS_BIND_KEY := "envoy_prometheus_bind_addr")
PROTOCOLS = ("tcp", "http", "http2", "grpc")
PROXY_UNSUPPORTED = ("expose", "local_service_address", "local_service_port", "mode", "mesh_gateway")
UPSTREAM_KEYS = ("destination_name", "local_bind_port", "local_bind_address", "datacenter")
UPSTREAM_UNSUPPORTED = ("destination_type", "destination_namespace", "destination_partition", "config", "mesh_gateway")
CONSUL_CHECK_KEYS = ("name", "http", "tcp", "interval", "timeout")
CONSUL_CHECK_UNSUPPORTED = (
    "id", "notes", "method", "header", "body", "tls_skip_verify", "tls_server_name", "status",
    "deregister_critical_service_after", "success_before_passing", "failures_before_critical",
    "ttl", "args", "script", "grpc", "grpc_use_tls", "docker_container_id", "shell", "h2ping",
    "alias_service", "alias_node", "udp", "os_service", "service_id",
)  # fmt: skip
NOMAD_KEYS = ("driver", "command", "args", "work_dir", "image", "env", "count", "resources", "publish", "checks",
              "update", "restart", "template", "ports", "job", "group", "task", "sidecar_task",
              "canary_tags", "canary_meta")
NOMAD_CHECK_KEYS = ("type", "path", "interval", "timeout", "name", "port")
RESOURCES_KEYS = ("cpu", "memory")
UPDATE_KEYS = ("max_parallel", "health_check", "min_healthy_time", "healthy_deadline", "progress_deadline",
               "auto_revert", "canary", "auto_promote")
RESTART_KEYS = ("attempts", "interval", "delay", "mode")
EXEC_ONLY = ("command", "args", "work_dir")
GATEWAY_KIND = "ingress-gateway"
GATEWAY_NOMAD_KEYS = ("count", "resources", "publish", "update", "restart", "template")
INGRESS_KEYS = ("listeners",)
LISTENER_KEYS = ("port", "protocol", "services")
LISTENER_PROTOCOLS = ("tcp", "http")
INGRESS_SERVICE_KEYS = ("name", "hosts")


@dataclass(frozen=True)
class Parsed:
    """What one file yields: the service (None when even its name is unusable) and its problems."""

    service: Service | None
    problems: tuple[Problem, ...]
    # (destination_name, path) of every upstream with a usable name, even when another of its
    # fields is wrong, so a misspelt destination is reported together with a bad port.
    references: tuple[tuple[str, str], ...] = ()


def parse_service(doc: Any, file: Path, label: str) -> Parsed:
    """Read one document. `file` resolves relative work_dirs; `label` names it in messages."""
    r = Reader(label)
    if not isinstance(doc, dict):
        r.error("", f"must be a JSON object with a 'service' key, {got(doc)}")
        return Parsed(None, tuple(r.problems))
    top = Obj(r, doc, "", TOP_KEYS)
    if not top.has("service"):
        r.error("service", "is required (Consul's service definition)")
        return Parsed(None, tuple(r.problems))
    svc = r.obj(top.raw("service"), "service", SERVICE_KEYS, SERVICE_UNSUPPORTED)
    if svc is None:
        return Parsed(None, tuple(r.problems))

    name = svc.name("name", required=True)
    if svc.string("id") is not None:
        r.warning(svc.at("id"), "is ignored: Nomad assigns service IDs itself")
    tags = pick(svc.strings("tags"), ())
    # Nomad lets a Connect service omit its port: a worker that only calls its upstreams still
    # gets its sidecar (the proxy's inbound side then has no app behind it; hashicorp/nomad#8307).
    gateway = svc.has("kind") or top.has("ingress")
    port = svc.integer("port", 1, 65535, required=gateway or not svc.has("connect"))
    meta = pick(svc.pairs("meta"), ())
    address = svc.string("address", nonempty=True)
    tag_override = pick(svc.boolean("enable_tag_override"), False)
    if svc.choice("kind", (GATEWAY_KIND,)) is not None or top.has("ingress"):
        if top.has("traffic"):
            r.error("traffic", "is for services behind a gateway, not for the gateway itself")
        return _gateway(r, top, svc, label, name, port, tags, meta)
    connect, upstreams, references = _connect(r, svc, name, port)
    protocol, prometheus_bind = _proxy_config(r, svc) if connect else (None, None)
    traffic = parse_traffic(r, top.raw("traffic"), name or "service", protocol, connect) \
        if top.has("traffic") else Traffic()
    ports = _ports(r, top.raw("nomad"), port, connect)
    checks = _checks(r, svc, top.raw("nomad"), name or "service", port, connect, ports)
    run = replace(_run(r, top, file), ports=ports, blocks=read_blocks(r, top.raw("nomad")))
    if not svc.has("connect") and any(level == "sidecar_task" for level, _ in run.blocks):
        r.error("nomad.sidecar_task", "needs a Connect service: only a sidecar has a sidecar_task")
    if port is None and svc.has("connect") and run.publish is not None:
        r.error("nomad.publish", "publishes the service port, but this Connect service has none (a worker)")
    if name is None:
        return Parsed(None, tuple(r.problems))
    service = Service(
        name=name,
        port=pick(port, 0),
        source=label,
        tags=tags,
        meta=meta,
        connect=connect,
        upstreams=upstreams,
        checks=checks,
        run=run,
        address=address,
        enable_tag_override=tag_override,
        protocol=protocol,
        traffic=traffic,
        prometheus_bind_addr=prometheus_bind,
    )
    return Parsed(service, tuple(r.problems), references)


def _proxy_config(r: Reader, svc: Obj) -> tuple[str | None, str | None]:
    """`service.connect.sidecar_service.proxy.config`: protocol and envoy_prometheus_bind_addr
    (structure already checked by _connect)."""
    sidecar = (svc.raw("connect") or {}).get("sidecar_service") if isinstance(svc.raw("connect"), dict) else None
    proxy = sidecar.get("proxy") if isinstance(sidecar, dict) else None
    if not isinstance(proxy, dict) or "config" not in proxy:
        return None, None
    where = join(join(join(svc.at("connect"), "sidecar_service"), "proxy"), "config")
    config = r.obj(proxy["config"], where, PROXY_CONFIG_KEYS)
    if config is None:
        return None, None
    bind = config.string(PROMETHEUS_BIND_KEY, nonempty=True)
    host, _, port = (bind or "").rpartition(":")
    if bind is not None and not (host and port.isdigit() and 0 < int(port) < 65536):
        r.error(config.at(PROMETHEUS_BIND_KEY), f"{bind!r}: want host:port, e.g. \"0.0.0.0:9102\"")
        bind = None
    return config.choice("protocol", PROTOCOLS), bind


def _gateway(r: Reader, top: Obj, svc: Obj, label: str, name: str | None, port: int | None,
             tags: tuple[str, ...], meta: tuple[tuple[str, str], ...]) -> Parsed:
    """A service of kind ingress-gateway: Consul's gateway registration plus its `ingress` entry.

    Nomad runs it (the job's service gets `connect { gateway { ingress { ... } } }` and Nomad injects
    the Envoy task), so `nomad` only says how many, how big and which host port to publish."""
    if svc.string("kind") != GATEWAY_KIND:
        r.error(svc.at("kind"), f"must be {GATEWAY_KIND!r} for a service with an 'ingress' section")
    for key in ("connect", "check", "checks"):
        if svc.has(key):
            r.error(svc.at(key), "is not used by an ingress gateway: it is itself an Envoy of the mesh")
    listeners, references = _ingress(r, top.raw("ingress")) if top.has("ingress") else ((), ())
    if not top.has("ingress"):
        r.error("ingress", "is required for an ingress gateway: its listeners (Consul's ingress-gateway entry)")
    ports = [lst.port for lst in listeners]
    if port is not None and ports and port not in ports:
        r.error(svc.at("port"), f"must be one of the ingress listener ports ({', '.join(map(str, ports))}): "
                "it is the listener nomad.publish maps to the host")
    run = _gateway_run(r, top)
    if name is None:
        return Parsed(None, tuple(r.problems))
    upstreams = tuple(Upstream(t.name, lst.port) for lst in listeners for t in lst.services)
    service = Service(name=name, port=pick(port, 0), source=label, tags=tags, meta=meta, connect=False,
                      upstreams=upstreams, run=run, ingress=listeners)
    return Parsed(service, tuple(r.problems), references)


def _ingress(r: Reader, raw: Any) -> tuple[tuple[IngressListener, ...], tuple[tuple[str, str], ...]]:
    o = r.obj(raw, "ingress", INGRESS_KEYS)
    items = r.array(o.raw("listeners"), o.at("listeners")) if o is not None and o.has("listeners") else None
    if o is not None and (not o.has("listeners") or items == []):
        r.error(o.at("listeners"), "is required: at least one listener")
    listeners: list[IngressListener] = []
    references: list[tuple[str, str]] = []
    seen: dict[int, int] = {}
    for i, item in enumerate(items or ()):
        path = join("ingress.listeners", i)
        lo = r.obj(item, path, LISTENER_KEYS)
        if lo is None:
            continue
        port = lo.integer("port", 1, 65535, required=True)
        protocol = pick(lo.choice("protocol", LISTENER_PROTOCOLS), "tcp")
        if port is not None and port in seen:
            r.error(lo.at("port"), f"{port} is already the port of ingress.listeners[{seen[port]}]")
            port = None
        elif port is not None:
            seen[port] = i
        targets = _ingress_services(r, lo, protocol, references)
        if port is not None and targets:
            listeners.append(IngressListener(port, protocol, targets))
    return tuple(listeners), tuple(references)


def _ingress_services(r: Reader, lo: Obj, protocol: str,
                      references: list[tuple[str, str]]) -> tuple[IngressService, ...]:
    items = r.array(lo.raw("services"), lo.at("services")) if lo.has("services") else None
    if not items:
        if items is not None or not lo.has("services"):
            r.error(lo.at("services"), "must list at least one service")
        return ()
    if protocol == "tcp" and len(items) > 1:
        r.error(lo.at("services"), "a tcp listener takes exactly one service (Consul routes by Host only on http)")
    out = []
    for j, item in enumerate(items):
        so = r.obj(item, join(lo.at("services"), j), INGRESS_SERVICE_KEYS)
        if so is None:
            continue
        name = so.name("name", required=True)
        hosts = pick(so.strings("hosts"), ())
        if hosts and protocol == "tcp":
            r.error(so.at("hosts"), "are only for http listeners (a tcp listener has no Host to route by)")
        if name is not None:
            references.append((name, so.at("name")))
            out.append(IngressService(name, hosts))
    return tuple(out)


def _gateway_run(r: Reader, top: Obj) -> Run:
    if not top.has("nomad"):
        return Run(driver="")
    raw = top.raw("nomad")
    for key in raw if isinstance(raw, dict) else ():
        if key in NOMAD_KEYS and key not in GATEWAY_NOMAD_KEYS:
            r.error(join("nomad", key), "is not used by an ingress gateway: Nomad runs its Envoy task")
    n = r.obj({k: v for k, v in raw.items() if k not in NOMAD_KEYS or k in GATEWAY_NOMAD_KEYS}
              if isinstance(raw, dict) else raw, "nomad", GATEWAY_NOMAD_KEYS)
    if n is None:
        return Run(driver="")
    return Run(driver="", count=pick(n.integer("count", 0), 1), resources=_resources(r, n),
               publish=n.integer("publish", 0, 65535), update=_update(r, n), restart=_restart(r, n),
               template=_template(r, n))


def _connect(
    r: Reader, svc: Obj, name: str | None, port: int | None
) -> tuple[bool, tuple[Upstream, ...], tuple[tuple[str, str], ...]]:
    if not svc.has("connect"):
        return False, (), ()
    connect = r.obj(svc.raw("connect"), svc.at("connect"), CONNECT_KEYS, CONNECT_UNSUPPORTED)
    if connect is None:
        return True, (), ()
    if not connect.has("sidecar_service"):
        r.error(connect.at("sidecar_service"), "is required: nomadmesh runs every Connect service with a sidecar")
        return True, (), ()
    sidecar = r.obj(connect.raw("sidecar_service"), connect.at("sidecar_service"), SIDECAR_KEYS, SIDECAR_UNSUPPORTED)
    if sidecar is None:
        return True, (), ()
    if sidecar.integer("port", 1, 65535) is not None:
        r.warning(sidecar.at("port"), "is ignored: Nomad gives the sidecar a dynamic port")
    if not sidecar.has("proxy"):
        return True, (), ()
    proxy = r.obj(sidecar.raw("proxy"), sidecar.at("proxy"), PROXY_KEYS, PROXY_UNSUPPORTED)
    if proxy is None or not proxy.has("upstreams"):
        return True, (), ()
    items = r.array(proxy.raw("upstreams"), proxy.at("upstreams"))
    upstreams: list[Upstream] = []
    references: list[tuple[str, str]] = []
    ports_seen: dict[int, tuple[int, str]] = {}
    for i, item in enumerate(items or ()):
        path = join(proxy.at("upstreams"), i)
        up, dest = _upstream(r, item, path, name, port, ports_seen, i)
        if dest is not None:
            references.append((dest, join(path, "destination_name")))
        if up is not None:
            upstreams.append(up)
    return True, tuple(upstreams), tuple(references)


def _upstream(
    r: Reader, item: Any, path: str, name: str | None, port: int | None, ports_seen: dict[int, tuple[int, str]], i: int
) -> tuple[Upstream | None, str | None]:
    """The upstream (None if any field is wrong) and its destination (None if that is wrong)."""
    up = r.obj(item, path, UPSTREAM_KEYS, UPSTREAM_UNSUPPORTED)
    if up is None:
        return None, None
    dest = up.name("destination_name", required=True)
    bind = up.integer("local_bind_port", 1, 65535, required=True)
    address = up.string("local_bind_address")
    if address is not None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            r.error(up.at("local_bind_address"), f"must be an IP address like '127.0.0.1', got {shown(address)}")
            address = None
    datacenter = up.string("datacenter")
    if datacenter is not None and not _is_dc(datacenter):
        r.error(up.at("datacenter"), f"{datacenter!r} is not a datacenter name: letters, digits, '-' and '_'")
        datacenter = None
    if dest is not None and dest == name:
        r.error(up.at("destination_name"),
                f"{dest!r} is this service itself; a service reaches itself without the mesh")
        dest = None
    if bind is not None:
        if bind == port:
            r.error(up.at("local_bind_port"), f"{bind} is the service's own port (service.port)")
            bind = None
        elif bind in ports_seen:
            j, other = ports_seen[bind]
            r.error(up.at("local_bind_port"), f"{bind} is already used by upstreams[{j}] ({other})")
            bind = None
        else:
            ports_seen[bind] = (i, dest or "?")
    if dest is None or bind is None:
        return None, dest
    return Upstream(dest, bind, pick(address, "127.0.0.1"), datacenter), dest


def _is_dc(text: str) -> bool:
    # Consul's datacenter rule (agent/config/builder.go: ^[a-zA-Z0-9_-]+$).
    return bool(text) and all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


def _ports(r: Reader, nomad: Any, port: int | None, connect: bool) -> tuple[tuple[str, int], ...]:
    """`nomad.ports`: several named ports inside the allocation (label -> port), sorted by label."""
    if not isinstance(nomad, dict) or "ports" not in nomad:
        return ()
    where = "nomad.ports"
    raw = nomad["ports"]
    if not isinstance(raw, dict):
        r.error(where, f"must be an object of port label -> port, {got(raw)}")
        return ()
    out: list[tuple[str, int]] = []
    labelled: dict[int, str] = {}
    for label, value in raw.items():
        path = join(where, label)
        if not PORT_LABEL_RE.match(label):
            r.error(path, "a port label is letters, digits and '_', starting with a letter or '_'")
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            r.error(path, f"must be a port number between 1 and 65535, {got(value)}")
            continue
        if value in labelled:
            r.error(path, f"port {value} is already labelled {labelled[value]!r}")
            continue
        if label == DEFAULT_PORT_LABEL and port is not None and value != port and not connect:
            r.error(path, f"label {label!r} is the service port's ({port}); give port {value} another label")
            continue
        labelled[value] = label
        out.append((label, value))
    return tuple(sorted(out))


def _checks(r: Reader, svc: Obj, nomad: Any, name: str, port: int | None, connect: bool,
            ports: tuple[tuple[str, int], ...] = ()) -> tuple[Check, ...]:
    """Consul's `check`/`checks` and nomadmesh's `nomad.checks`, in that order, with unique names."""
    found: list[tuple[str, Check]] = []
    if svc.has("check"):
        check = _consul_check(r, svc.raw("check"), svc.at("check"), port)
        if check is not None:
            found.append((svc.at("check"), check))
    def consul(item: Any, path: str) -> Check | None:
        return _consul_check(r, item, path, port)

    def nomad_check(item: Any, path: str) -> Check | None:
        return _nomad_check(r, item, path, ports)

    sources: list[tuple[Any, str, Callable[[Any, str], Check | None]]] = []
    if svc.has("checks"):
        sources.append((svc.raw("checks"), svc.at("checks"), consul))
    if isinstance(nomad, dict) and "checks" in nomad:
        sources.append((nomad["checks"], "nomad.checks", nomad_check))
    for value, where, read in sources:
        for i, item in enumerate(r.array(value, where) or ()):
            path = join(where, i)
            check = read(item, path)
            if check is not None:
                found.append((path, check))
    if svc.has("connect"):
        found = _without_tcp(r, found)
    if port is None and svc.has("connect"):
        for path, check in found:
            if check.port is None:
                r.error(path, "checks the service port, but this Connect service has none (a worker); "
                              "give the check a port from nomad.ports")
    return _named(r, found, name, connect)


# Nomad refuses these at submit time ("tcp checks are not valid for Connect enabled services",
# structs.Service.validateConsulService), whatever port the check names (hashicorp/nomad#6141).
TCP_ON_CONNECT = (
    "a tcp check is not valid on a Connect service: Consul cannot reach into the allocation's network "
    "namespace, and a host port to the app would bypass the sidecar's mTLS, so Nomad refuses it; "
    "use an http check (Nomad exposes it through the sidecar, on the service port or a port of nomad.ports), "
    "or no check (the deployment then waits for the task to run)"
)


def _without_tcp(r: Reader, found: list[tuple[str, Check]]) -> list[tuple[str, Check]]:
    """The checks of a Connect service minus its tcp checks, each refused with the reason."""
    kept = []
    for path, check in found:
        if check.type == "tcp":
            # A Consul check names its kind by key (`"tcp": "host:port"`), a nomad.checks one by `type`.
            r.error(join(path, "type" if path.startswith("nomad.") else "tcp"), TCP_ON_CONNECT)
        else:
            kept.append((path, check))
    return kept


def _named(r: Reader, found: list[tuple[str, Check]], name: str, connect: bool) -> tuple[Check, ...]:
    used: dict[str, str] = {}
    for path, check in found:
        if check.name:
            if check.name in used:
                r.error(join(path, "name"), f"check name {check.name!r} is already used by {used[check.name]}")
            used.setdefault(check.name, path)
    out: list[Check] = []
    for path, check in found:
        if not check.name:
            base = candidate = f"{name}-{check.type}"
            n = 2
            while candidate in used:
                candidate, n = f"{base}-{n}", n + 1
            used[candidate] = path
            check = replace(check, name=candidate)
        out.append(replace(check, expose=connect and check.type == "http"))
    return tuple(out)


def _consul_check(r: Reader, item: Any, path: str, port: int | None) -> Check | None:
    c = r.obj(item, path, CONSUL_CHECK_KEYS, CONSUL_CHECK_UNSUPPORTED)
    if c is None:
        return None
    name = pick(c.string("name", nonempty=True), "")
    interval = pick(c.duration("interval"), "10s")
    timeout = pick(c.duration("timeout"), "2s")
    kinds = [k for k in ("http", "tcp") if c.has(k)]
    if len(kinds) != 1:
        r.error(path, "needs exactly one of 'http' (a URL) or 'tcp' (host:port); nomadmesh renders only these")
        return None
    target = c.string(kinds[0], required=True)
    if target is None:
        return None
    if kinds[0] == "http":
        try:
            url = urlsplit(target)
            url_port = url.port
        except ValueError:
            url, url_port = None, None
        if url is None or url.scheme != "http" or not url.hostname:
            r.error(c.at("http"), f"must be a URL like 'http://localhost:5000/health', got {shown(target)}")
            return None
        path_q = (url.path or "/") + (f"?{url.query}" if url.query else "")
        if not _same_port(r, c.at("http"), url_port, port):
            return None
        return Check("http", name, interval, timeout, path_q)
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        r.error(c.at("tcp"), f"must be host:port like 'localhost:5000', got {shown(target)}")
        return None
    if not _same_port(r, c.at("tcp"), int(port_text), port):
        return None
    return Check("tcp", name, interval, timeout)


def _same_port(r: Reader, path: str, checked: int | None, service_port: int | None) -> bool:
    # Nomad checks the service's own port; a check on another port cannot be expressed.
    if checked is None or service_port is None or checked == service_port:
        return True
    r.error(path, f"checks port {checked} but the service port is {service_port}; Nomad checks the service port")
    return False


def _nomad_check(r: Reader, item: Any, path: str, ports: tuple[tuple[str, int], ...]) -> Check | None:
    c = r.obj(item, path, NOMAD_CHECK_KEYS)
    if c is None:
        return None
    label = c.string("port", nonempty=True)
    labels = [lbl for lbl, _ in ports]
    if label is not None and label not in labels:
        known = f"the labels in nomad.ports are {', '.join(labels)}" if labels else "nomad.ports names none"
        r.error(c.at("port"), f"names no port: {known}")
        label = None
    kind = c.choice("type", CHECK_TYPES, required=True)
    name = pick(c.string("name", nonempty=True), "")
    interval = pick(c.duration("interval"), "10s")
    timeout = pick(c.duration("timeout"), "2s")
    check_path = c.string("path")
    if kind == "http":
        if check_path is None and not c.has("path"):
            r.error(c.at("path"), "is required for http checks (e.g. '/health')")
        elif check_path is not None and not check_path.startswith("/"):
            r.error(c.at("path"), f"must start with '/', got {shown(check_path)}")
            check_path = None
    elif kind == "tcp" and c.has("path"):
        r.error(c.at("path"), "is only for http checks")
    if kind is None or (kind == "http" and check_path is None):
        return None
    return Check(kind, name, interval, timeout, check_path if kind == "http" else None, port=label)


def _run(r: Reader, top: Obj, file: Path) -> Run:
    if not top.has("nomad"):
        r.error("nomad", "is required: say how Nomad runs the service (driver and command, or docker and image)")
        return Run()
    n = r.obj(top.raw("nomad"), "nomad", NOMAD_KEYS)
    if n is None:
        return Run()
    driver = pick(n.choice("driver", DRIVERS), "raw_exec")
    command = n.string("command", nonempty=True)
    image = n.string("image", nonempty=True)
    if driver == "docker":
        if image is None and not n.has("image"):
            r.error(n.at("image"), "is required for the docker driver")
        for key in EXEC_ONLY:
            if n.has(key):
                r.error(n.at(key), "is only used by the raw_exec and exec drivers")
    else:
        if command is None and not n.has("command"):
            r.error(n.at("command"), f"is required for the {driver} driver")
        if n.has("image"):
            r.error(n.at("image"), "is only used by the docker driver")
    work_dir = n.string("work_dir", nonempty=True)
    return Run(
        driver=driver,
        command=command,
        args=pick(n.strings("args"), ()),
        work_dir=resolve_work_dir(file, work_dir),
        image=image,
        env=pick(n.pairs("env"), ()),
        count=pick(n.integer("count", 0), 1),
        resources=_resources(r, n),
        publish=n.integer("publish", 0, 65535),
        update=_update(r, n),
        restart=_restart(r, n),
        template=_template(r, n),
        canary_tags=pick(n.strings("canary_tags"), ()),
        canary_meta=pick(n.pairs("canary_meta"), ()),
    )


def _template(r: Reader, n: Obj) -> str | None:
    """A plain template file name; whether it exists is checked where the folder is known (load.py)."""
    name = n.string("template", nonempty=True)
    problem = None if name is None else name_problem(name)
    if problem:
        r.error(n.at("template"), problem)
        return None
    return name


def _resources(r: Reader, n: Obj) -> Resources:
    o = r.obj(n.raw("resources"), n.at("resources"), RESOURCES_KEYS) if n.has("resources") else None
    if o is None:
        return Resources()
    d = Resources()
    # Nomad's own minimums: 1 MHz of CPU, 10 MB of memory.
    return Resources(cpu=pick(o.integer("cpu", 1), d.cpu), memory=pick(o.integer("memory", 10), d.memory))


def _update(r: Reader, n: Obj) -> Update:
    o = r.obj(n.raw("update"), n.at("update"), UPDATE_KEYS) if n.has("update") else None
    if o is None:
        return Update()
    d = Update()
    update = Update(
        max_parallel=pick(o.integer("max_parallel", 0), d.max_parallel),
        health_check=pick(o.choice("health_check", HEALTH_CHECKS), d.health_check),
        min_healthy_time=pick(o.duration("min_healthy_time"), d.min_healthy_time),
        healthy_deadline=pick(o.duration("healthy_deadline"), d.healthy_deadline),
        progress_deadline=pick(o.duration("progress_deadline"), d.progress_deadline),
        auto_revert=pick(o.boolean("auto_revert"), d.auto_revert),
        canary=pick(o.integer("canary", 0), d.canary),
        auto_promote=pick(o.boolean("auto_promote"), d.auto_promote),
    )
    if update.auto_promote and not update.canary:  # Nomad refuses it at submit time too
        r.error(o.at("auto_promote"), "needs canary greater than 0 (auto_promote promotes canaries)")
    # Nomad refuses these orderings at submit time (structs.UpdateStrategy.Validate).
    min_healthy, healthy, progress = (
        parse_ns(t) for t in (update.min_healthy_time, update.healthy_deadline, update.progress_deadline)
    )
    if min_healthy >= healthy:
        r.error(o.at("min_healthy_time"), f"must be shorter than healthy_deadline ({update.healthy_deadline})")
    if progress and healthy >= progress:
        r.error(o.at("healthy_deadline"), f"must be shorter than progress_deadline ({update.progress_deadline})")
    return update


def _restart(r: Reader, n: Obj) -> Restart:
    o = r.obj(n.raw("restart"), n.at("restart"), RESTART_KEYS) if n.has("restart") else None
    if o is None:
        return Restart()
    d = Restart()
    return Restart(
        attempts=pick(o.integer("attempts", 0), d.attempts),
        interval=pick(o.duration("interval"), d.interval),
        delay=pick(o.duration("delay"), d.delay),
        mode=pick(o.choice("mode", RESTART_MODES), d.mode),
    )

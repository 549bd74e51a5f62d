"""`consul connect envoy -sidecar-for <service-id>` for any Consul agent (ours or HashiCorp's).

The seed's workflow without Nomad: a service registered through `/v1/agent/service/register` with
`Connect.SidecarService` gets a `<id>-sidecar-proxy` service of kind connect-proxy; this finds it
through the agent HTTP API, writes an Envoy bootstrap whose node id is that proxy's ID (so the ADS
server serves it that proxy's snapshot) and whose ADS cluster is the agent's gRPC address, and runs
Envoy in the foreground in place of this process.

The address: `--grpc-addr` / CONSUL_GRPC_ADDR if given; else the plaintext gRPC port the agent
publishes in /v1/agent/self; else (our dev agent by default, or Consul with `ports.grpc = -1` and a
unix `addresses.grpc`) the `unix://` address in DebugConfig.GRPCAddrs, as Consul spells it there.

    find_sidecar(services, id)        pure: the one connect-proxy whose DestinationServiceID is id
    grpc_port(agent_self)             pure: the xDS port the agent publishes
    grpc_unix_addr(agent_self)        pure: the unix socket address the agent publishes
    sidecar_bootstrap(proxy, ...)     pure: envoy.bootstrap for that proxy
    lookup(consul, id, ...)           I/O: the two HTTP reads, then the pure parts
    exec_envoy(boot, ...)             I/O: exec Envoy with the bootstrap on a pipe (no file left behind)
"""
from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import consul as consul_lib
import requests

from nomadmesh.connect import envoy
from nomadmesh.deploy.consul_api import consul_address, translate
from nomadmesh.errors import NomadMeshError

DEFAULT_ADMIN_BIND = "127.0.0.1:19000"  # Consul's -admin-bind default
GRPC_ADDR_ENV = "CONSUL_GRPC_ADDR"  # what `consul connect envoy` reads too


class SidecarError(NomadMeshError):
    """The sidecar cannot be found or started (names the service ID and what is missing)."""


@dataclass(frozen=True)
class Sidecar:
    proxy: dict[str, Any]  # the connect-proxy service as /v1/agent/services shows it
    xds_address: str  # host:port or unix:///path
    bootstrap: dict[str, Any]


def find_sidecar(services: Mapping[str, Mapping[str, Any]], service_id: str) -> dict[str, Any]:
    """The connect-proxy service whose Proxy.DestinationServiceID is `service_id` (Consul's rule)."""
    matches = sorted((dict(s) for s in services.values() if s.get("Kind") == "connect-proxy"
                      and (s.get("Proxy") or {}).get("DestinationServiceID") == service_id),
                     key=lambda s: s["ID"])
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(s["ID"] for s in matches)
        raise SidecarError(f"--sidecar-for {service_id}: more than one sidecar proxy is registered for it ({ids})")
    if service_id not in services:
        known = ", ".join(sorted(services)) or "none"
        raise SidecarError(f"--sidecar-for {service_id}: no service with that ID on the agent (registered: {known})")
    raise SidecarError(f"--sidecar-for {service_id}: the service has no sidecar proxy; register it with "
                       "Connect.SidecarService (connect { sidecar_service {} })")


def grpc_port(agent_self: Mapping[str, Any]) -> int | None:
    """The plaintext xDS/gRPC port from /v1/agent/self (Consul 1.14+: xDS.Ports; older: DebugConfig)."""
    ports = ((agent_self.get("xDS") or {}).get("Ports") or {})
    for port in (ports.get("Plaintext"), (agent_self.get("DebugConfig") or {}).get("GRPCPort")):
        if isinstance(port, int) and port > 0:
            return port
    return None


def grpc_unix_addr(agent_self: Mapping[str, Any]) -> str | None:
    """The first `unix://` address in /v1/agent/self DebugConfig.GRPCAddrs (Consul's sanitized form)."""
    addrs = (agent_self.get("DebugConfig") or {}).get("GRPCAddrs") or []
    return next((a for a in addrs if isinstance(a, str) and a.startswith("unix:///")), None)


def parse_grpc_addr(addr: str) -> str:
    """`--grpc-addr` as Consul takes it (`http://h:p`, `h:p`, `unix:///path`) -> envoy's form."""
    text = addr.strip()
    if text.startswith("unix://") or text.startswith("/"):
        return text if text.startswith("unix://") else "unix://" + text
    parts = urlsplit(text if "://" in text else "http://" + text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise SidecarError(f"--grpc-addr {addr!r}: want host:port, http://host:port or unix:///path")
    return f"{_ip(parts.hostname)}:{port}"


def _ip(host: str) -> str:
    # The bootstrap's ADS cluster is STATIC, which takes an IP, not a name.
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])  # the address, as text
    except OSError as e:
        raise SidecarError(f"cannot resolve {host!r}: {e}") from None


def split_bind(bind: str, option: str = "--admin-bind") -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise SidecarError(f"{option} {bind!r}: want host:port, e.g. {DEFAULT_ADMIN_BIND}")
    return host.strip("[]"), int(port)


def sidecar_bootstrap(
    proxy: Mapping[str, Any], xds_address: str, admin_bind: str = DEFAULT_ADMIN_BIND
) -> dict[str, Any]:
    """Envoy's bootstrap for a sidecar: node id = proxy ID, cluster = the service it fronts."""
    host, port = split_bind(admin_bind)
    cluster = (proxy.get("Proxy") or {}).get("DestinationServiceName") or proxy.get("Service") or proxy["ID"]
    return envoy.bootstrap(str(proxy["ID"]), str(cluster), xds_address, host, port)


def lookup(consul: consul_lib.Consul, service_id: str, grpc_addr: str | None = None,
           admin_bind: str = DEFAULT_ADMIN_BIND) -> Sidecar:
    """Find the sidecar of `service_id` through a py-consul client and build its bootstrap.

    Without `grpc_addr`, the agent's published gRPC port on the host of its HTTP address, else its
    published unix socket. Consul's failures are the Consul client's TargetErrors (deploy.consul_api);
    a bad answer a SidecarError."""
    try:
        proxy = find_sidecar(consul.agent.services(), service_id)
        if grpc_addr:
            xds = parse_grpc_addr(grpc_addr)
        else:
            me = consul.agent.self()
            port, unix = grpc_port(me), grpc_unix_addr(me)
            if port is not None:
                xds = f"{_ip(urlsplit(consul.http.base_uri).hostname or '127.0.0.1')}:{port}"
            elif unix is not None:
                xds = unix
            else:
                raise SidecarError(f"the Consul agent at {consul.http.base_uri} publishes no gRPC (xDS) port or "
                                   f"unix socket in /v1/agent/self; pass --grpc-addr or set {GRPC_ADDR_ENV}")
    except (requests.RequestException, consul_lib.ConsulException) as e:  # the Consul client's wording
        raise translate(consul_address(consul), e) from None
    except ValueError as e:  # an answer that is not the JSON Consul sends
        raise SidecarError(f"cannot read the Consul agent at {consul.http.base_uri}: {e}") from None
    return Sidecar(proxy=proxy, xds_address=xds, bootstrap=sidecar_bootstrap(proxy, xds, admin_bind))


def exec_envoy(boot: Mapping[str, Any], envoy_binary: str | None = None, log_level: str = "info",
               extra_args: Sequence[str] = ()) -> NoReturn:
    """Replace this process with Envoy (so signals and the exit code are Envoy's own).

    The bootstrap is read from a pipe, as `consul connect envoy` does, so no file is left behind;
    it is far below the pipe's 64 KiB buffer, so writing it before the exec cannot block."""
    binary = envoy_binary or envoy.find_envoy()
    data = json.dumps(boot).encode()
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    argv = envoy.envoy_argv(f"/dev/fd/{read_fd}", envoy=binary, log_level=log_level) + list(extra_args)
    try:
        os.execv(binary, argv)
    except OSError as e:
        raise SidecarError(f"cannot run envoy {binary}: {e}") from None

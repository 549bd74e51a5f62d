"""Where nomadmesh talks to: a Nomad and a Consul HTTP API, chosen like the HashiCorp CLIs choose.

`Target.from_env(environ, nomad_addr=..., consul_addr=...)` reads NOMAD_ADDR, NOMAD_TOKEN,
NOMAD_NAMESPACE, NOMAD_REGION, NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY,
NOMAD_SKIP_VERIFY and the CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL, CONSUL_CACERT,
CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_HTTP_SSL_VERIFY equivalents; explicit options win.
Defaults are the agents' own: http://127.0.0.1:4646 and http://127.0.0.1:8500 (the embedded dev
agent listens there too, so one code path serves both kinds of target).

`nomad_client(target)` and `consul_client(target)` build python-nomad and py-consul clients.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import consul
import nomad

from nomadmesh.errors import TargetError

DEFAULT_NOMAD_ADDR = "http://127.0.0.1:4646"
DEFAULT_CONSUL_ADDR = "http://127.0.0.1:8500"
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Endpoint:
    """One HTTP API: address, token and TLS settings."""

    scheme: str
    host: str
    port: int
    token: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def requests_verify(self) -> bool | str:
        """What `requests` takes as `verify`: a CA bundle path, or a bool."""
        if self.scheme != "https":
            return False
        if not self.verify:
            return False
        return self.ca_cert or True

    @property
    def requests_cert(self) -> tuple[str, str] | None:
        return (self.client_cert, self.client_key) if self.client_cert and self.client_key else None


@dataclass(frozen=True)
class Target:
    nomad: Endpoint
    consul: Endpoint
    namespace: str | None = None
    region: str | None = None


def for_namespace(target: Target, namespace: str) -> Target:
    """The target a project's Nomad calls go to: its nomadmesh.json `namespace`, unless NOMAD_NAMESPACE
    chose one (it wins, as `-namespace` does over the job's own in `nomad job run`)."""
    if target.namespace or namespace == "default":
        return target
    return replace(target, namespace=namespace)


def parse_addr(addr: str, default_port: int, variable: str, force_https: bool = False) -> tuple[str, str, int]:
    """Split `addr` ("http://h:p", "h:p" or "h") into scheme, host, port; TargetError if it is not one."""
    text = addr.strip()
    if "://" not in text:
        text = ("https://" if force_https else "http://") + text
    try:
        parts = urlsplit(text)
        port = parts.port or default_port
    except ValueError as e:
        raise TargetError(f"{variable}: {addr!r} is not an address ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"{variable}: {addr!r} is not an http(s) address")
    return parts.scheme, parts.hostname, port


def _endpoint(env: Mapping[str, str], prefix: str, addr: str, default_port: int, variable: str) -> Endpoint:
    force_https = prefix == "CONSUL" and env.get("CONSUL_HTTP_SSL", "").lower() not in _FALSE
    scheme, host, port = parse_addr(addr, default_port, variable, force_https)
    http = "HTTP_" if prefix == "CONSUL" else ""
    if prefix == "CONSUL":
        verify = env.get("CONSUL_HTTP_SSL_VERIFY", "true").lower() not in _FALSE
    else:
        verify = env.get("NOMAD_SKIP_VERIFY", "").lower() in _FALSE
    return Endpoint(
        scheme=scheme,
        host=host,
        port=port,
        token=env.get(f"{prefix}_{http}TOKEN") or None,
        ca_cert=env.get(f"{prefix}_CACERT") or None,
        client_cert=env.get(f"{prefix}_CLIENT_CERT") or None,
        client_key=env.get(f"{prefix}_CLIENT_KEY") or None,
        verify=verify,
    )


def target_from_env(
    env: Mapping[str, str], nomad_addr: str | None = None, consul_addr: str | None = None
) -> Target:
    """The target the HashiCorp CLIs would use with this environment; options override it."""
    nomad_text = nomad_addr or env.get("NOMAD_ADDR") or DEFAULT_NOMAD_ADDR
    consul_text = consul_addr or env.get("CONSUL_HTTP_ADDR") or DEFAULT_CONSUL_ADDR
    return Target(
        nomad=_endpoint(env, "NOMAD", nomad_text, 4646, "--nomad-addr" if nomad_addr else "NOMAD_ADDR"),
        consul=_endpoint(env, "CONSUL", consul_text, 8500, "--consul-addr" if consul_addr else "CONSUL_HTTP_ADDR"),
        namespace=env.get("NOMAD_NAMESPACE") or None,
        region=env.get("NOMAD_REGION") or None,
    )


def nomad_client(target: Target, timeout: int = 10) -> nomad.Nomad:
    ep = target.nomad
    return nomad.Nomad(
        host=ep.host,
        port=ep.port,
        secure=ep.scheme == "https",
        token=ep.token,
        namespace=target.namespace,
        region=target.region,
        timeout=timeout,
        verify=ep.requests_verify,
        cert=ep.requests_cert or (),
    )


def consul_client(target: Target, timeout: float = 10) -> consul.Consul:
    ep = target.consul
    return consul.Consul(
        host=ep.host,
        port=ep.port,
        scheme=ep.scheme,
        token=ep.token,
        verify=ep.requests_verify,
        cert=ep.requests_cert,
        connections_timeout=timeout,
    )

"""The one Consul client of product code (intentions, mesh check, graph, sidecar-for, the web UI).

`ConsulAPI(target)` holds a py-consul client for the SDK's calls (`.sdk`, built by
`deploy.target.consul_client`) and `HttpApi`'s raw reads for the rest (blocking queries, the dev
agent's own endpoints). Failures of either become a `TargetError` worded by `deploy.http_api`, the
same wording as the Nomad client's; code that holds only a py-consul client wraps its calls in
`consul_errors(consul)`.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import consul as consul_lib
import requests

from nomadmesh.deploy.http_api import HttpApi, refused, unreachable
from nomadmesh.deploy.target import Target, consul_client
from nomadmesh.errors import TargetError

_STATUS_PREFIX = re.compile(r"(\d{3}) (.*)", re.DOTALL)  # py-consul's "400 <body>" messages


def consul_address(consul: consul_lib.Consul) -> str:
    return str(getattr(consul.http, "base_uri", "Consul"))


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""


def translate(address: str, error: Exception) -> TargetError:
    """A py-consul or requests failure as the one TargetError wording."""
    if isinstance(error, requests.RequestException):
        return unreachable("Consul", address, error)
    text = str(error).strip()
    if isinstance(error, consul_lib.ACLPermissionDenied):
        return refused("Consul", address, 403, _first_line(text) or type(error).__name__)
    if isinstance(error, consul_lib.ACLDisabled):
        return refused("Consul", address, 401, _first_line(text) or type(error).__name__)
    match = _STATUS_PREFIX.fullmatch(text)
    if match:
        return refused("Consul", address, int(match.group(1)), _first_line(match.group(2)) or match.group(1))
    return TargetError(f"Consul at {address} refused the request: {_first_line(text) or type(error).__name__}")


@contextmanager
def consul_errors(consul: consul_lib.Consul) -> Iterator[None]:
    """Turn py-consul / requests failures into one-line TargetErrors naming the address."""
    try:
        yield
    except (requests.RequestException, consul_lib.ConsulException) as e:
        raise translate(consul_address(consul), e) from None


class ConsulAPI(HttpApi):
    """The Consul HTTP API of a target: `.sdk` (py-consul) and raw reads, one error wording."""

    def __init__(self, target: Target, timeout: float = 10) -> None:
        super().__init__("Consul", target.consul, "X-Consul-Token", "X-Consul-Index")
        self.target = target
        self.sdk: consul_lib.Consul = consul_client(target, timeout=timeout)

    @contextmanager
    def errors(self) -> Iterator[None]:
        with consul_errors(self.sdk):
            yield

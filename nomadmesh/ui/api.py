"""The UI's only I/O: reads from the Nomad and Consul HTTP APIs of a `Target`, nothing else.

Reads go through one `requests.Session` per API with the target's token and TLS settings, so the
UI works the same against the dev agent and a real cluster. `get` returns the decoded JSON and the
blocking index (`X-Consul-Index` / `X-Nomad-Index`); `wait_index` is one blocking query.
Failures become `TargetError` naming the URL, never a traceback in the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from nomadmesh.deploy.target import Endpoint, Target
from nomadmesh.errors import TargetError

READ_TIMEOUT_S = 10.0


@dataclass
class Reply:
    data: Any
    index: int
    status: int


class ApiClient:
    """GETs against one HTTP API (Consul or Nomad) with its token and TLS settings."""

    def __init__(self, endpoint: Endpoint, token_header: str, index_header: str,
                 extra_params: dict[str, str] | None = None):
        self.endpoint = endpoint
        self.index_header = index_header
        self.extra_params = extra_params or {}
        self.session = requests.Session()
        self.session.verify = endpoint.requests_verify
        if endpoint.requests_cert:
            self.session.cert = endpoint.requests_cert
        if endpoint.token:
            self.session.headers[token_header] = endpoint.token

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = READ_TIMEOUT_S,
            allow_404: bool = False, text: bool = False) -> Reply:
        url = self.endpoint.url + path
        try:
            resp = self.session.get(url, params={**self.extra_params, **(params or {})}, timeout=timeout)
        except requests.RequestException as e:
            raise TargetError(f"GET {url}: {type(e).__name__}: {e}") from None
        index = int(resp.headers.get(self.index_header, "0") or 0)
        if resp.status_code == 404 and allow_404:
            return Reply(None, index, 404)
        if resp.status_code != 200:
            raise TargetError(f"GET {url}: {resp.status_code} {resp.text.strip()[:300]}")
        if text:
            return Reply(resp.text, index, 200)
        try:
            return Reply(resp.json(), index, 200)
        except ValueError:
            raise TargetError(f"GET {url}: answer is not JSON") from None

    def wait_index(self, path: str, index: int, wait_s: float) -> int:
        """One blocking query: returns the new index once it moves past `index`, or at `wait_s`."""
        params = {"index": str(index), "wait": f"{int(wait_s)}s"} if index else {}
        return self.get(path, params, timeout=wait_s + wait_s / 16 + 10).index

    def close(self) -> None:
        self.session.close()


@dataclass
class Apis:
    consul: ApiClient
    nomad: ApiClient

    def close(self) -> None:
        self.consul.close()
        self.nomad.close()


def apis_for(target: Target) -> Apis:
    nomad_params = {}
    if target.namespace:
        nomad_params["namespace"] = target.namespace
    if target.region:
        nomad_params["region"] = target.region
    return Apis(
        consul=ApiClient(target.consul, "X-Consul-Token", "X-Consul-Index"),
        nomad=ApiClient(target.nomad, "X-Nomad-Token", "X-Nomad-Index", nomad_params),
    )

"""What the Nomad and the Consul client share: raw reads of one HTTP API and the one error wording.

Product code talks to each API through one client (`deploy.nomad_api.NomadAPI`,
`deploy.consul_api.ConsulAPI`, both built on `HttpApi`); whether a call goes through the SDK
(python-nomad, py-consul) or is a raw read (the web UI's, blocking queries on any path), a failure
becomes a `TargetError` worded here, once:

    nothing answered:        cannot reach Nomad at http://127.0.0.1:4646: connection refused
    401 / 403:               Nomad at http://127.0.0.1:4646 refused the token (GET /v1/jobs, 403): ...
    any other status:        Nomad at http://127.0.0.1:4646: GET /v1/allocations failed (500): ...
    ... when the call is     Consul at http://127.0.0.1:8500 refused the request (400): ...
        unknown (py-consul's errors do not say which call was made)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from nomadmesh.deploy.target import Endpoint
from nomadmesh.errors import TargetError

READ_TIMEOUT_S = 10.0


def reason(error: BaseException | str) -> str:
    """Why nothing answered, in a few words (requests' messages are a paragraph of nested reprs)."""
    text = str(error)
    low = text.lower()
    if "connection refused" in low or "errno 111" in low:
        return "connection refused"
    if isinstance(error, requests.Timeout) or "timed out" in low:
        return "timed out"
    if "name or service not known" in low or "nodename nor servname" in low:
        return "unknown host"
    if isinstance(error, requests.exceptions.SSLError):
        return f"TLS error: {text}"
    return text


def unreachable(api: str, address: str, error: BaseException | str) -> TargetError:
    return TargetError(f"cannot reach {api} at {address}: {reason(error)}")


def refused(api: str, address: str, status: int, message: str, what: str | None = None) -> TargetError:
    """The API answered `status` (>= 400) with `message` (its own text, first line) to `what`."""
    if status in (401, 403):
        verb = "the token" if status == 403 else "the request"
        return TargetError(f"{api} at {address} refused {verb} ({what + ', ' if what else ''}{status}): {message}")
    if what:
        return TargetError(f"{api} at {address}: {what} failed ({status}): {message}")
    return TargetError(f"{api} at {address} refused the request ({status}): {message}")


def response_message(resp: requests.Response) -> str:
    return (resp.text or "").strip() or resp.reason or str(resp.status_code)


@dataclass
class Reply:
    """A raw read's decoded body, the API's blocking index (X-Consul-Index / X-Nomad-Index), status."""

    data: Any
    index: int
    status: int


class HttpApi:
    """Raw GETs against one HTTP API with its address, token and TLS settings."""

    def __init__(self, api: str, endpoint: Endpoint, token_header: str, index_header: str,
                 extra_params: dict[str, str] | None = None) -> None:
        self.api = api
        self.endpoint = endpoint
        self.address = endpoint.url
        self.index_header = index_header
        self.extra_params = extra_params or {}
        self.session = requests.Session()
        self.session.verify = endpoint.requests_verify
        if endpoint.requests_cert:
            self.session.cert = endpoint.requests_cert
        if endpoint.token:
            self.session.headers[token_header] = endpoint.token

    def unreachable(self, error: BaseException | str) -> TargetError:
        return unreachable(self.api, self.address, error)

    def refused(self, status: int, message: str, what: str | None = None) -> TargetError:
        return refused(self.api, self.address, status, message, what)

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = READ_TIMEOUT_S,
            allow_404: bool = False, text: bool = False) -> Reply:
        """GET `path` (JSON, or text with `text`); a 404 is a Reply with None when `allow_404`."""
        try:
            resp = self.session.get(self.address + path, params={**self.extra_params, **(params or {})},
                                    timeout=timeout)
        except requests.RequestException as e:
            raise self.unreachable(e) from None
        index = int(resp.headers.get(self.index_header, "0") or 0)
        if resp.status_code == 404 and allow_404:
            return Reply(None, index, 404)
        if resp.status_code != 200:
            raise self.refused(resp.status_code, response_message(resp)[:300], f"GET {path}")
        if text:
            return Reply(resp.text, index, 200)
        try:
            return Reply(resp.json(), index, 200)
        except ValueError:
            raise TargetError(f"{self.api} at {self.address}: GET {path} answered no JSON") from None

    def wait_index(self, path: str, index: int, wait_s: float) -> int:
        """One blocking query: returns the new index once it moves past `index`, or at `wait_s`."""
        params = {"index": str(index), "wait": f"{int(wait_s)}s"} if index else {}
        return self.get(path, params, timeout=wait_s + wait_s / 16 + 10).index

    def close(self) -> None:
        self.session.close()

"""Who may talk to a local HTTP server: the DNS-rebinding and cross-site request guard.

The dev agent and `nomadmesh ui` listen without tokens (as `consul agent -dev` does), so any web
page the operator visits could otherwise drive them: a cross-origin `text/plain` POST needs no CORS
preflight, and a DNS-rebinding page (its own name re-pointed at 127.0.0.1) can even read answers.
`decide` is the one rule, shared by the Nomad API, the Consul API and the UI:

- **Host** must name this server, on every request (a rebinding page sends its own name): the
  bind address with the server's port; for a loopback bind also `localhost`, `127.0.0.1`, `[::1]`;
  for a wildcard bind (0.0.0.0, ::) any IP literal, `localhost` or this machine's host name, because
  the server answers on every local address and an IP literal cannot be rebound; for a specific
  non-loopback address that address or this machine's host name. A request without Host (HTTP/1.0)
  cannot come from a browser and passes.
- **A browser's cross-site request** is refused on every method that can change something (all
  but GET, HEAD, OPTIONS): an `Origin` that is not this request's own origin (including
  `Origin: null`, sent by sandboxed frames and data: pages), or `Sec-Fetch-Site: cross-site`
  or `same-site` (another port on localhost is same-site).

Clients that send neither Origin nor Sec-Fetch-Site (curl, python-nomad, py-consul, the CLI) pass.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: Quart is imported when a guard is installed
    from quart import Quart
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class OwnAddress:
    """The names a server answers to: `names` (lower case, IPv6 without brackets) or, when
    `any_ip`, any IP literal; always on `port`."""

    names: frozenset[str]
    port: int
    any_ip: bool = False


def own_address(bind: str, port: int, hostname: str | None = None) -> OwnAddress:
    """What a server bound to `bind:port` answers to (see the module docstring for the choice)."""
    machine = {_norm(n) for n in (hostname if hostname is not None else socket.gethostname(),) if n}
    bind_n = _norm(bind)
    if bind_n in WILDCARDS:
        return OwnAddress(frozenset({"localhost", *machine}), port, any_ip=True)
    if bind_n == "localhost" or _is_loopback(bind_n):
        return OwnAddress(frozenset({bind_n, *LOOPBACK_NAMES}), port)
    return OwnAddress(frozenset({bind_n, *machine}), port)


def decide(method: str, host: str | None, origin: str | None, fetch_site: str | None,
           own: OwnAddress) -> str | None:
    """None when the request may proceed, else the one-line reason it is refused (403)."""
    host = host or None  # Quart gives an HTTP/1.0 request without Host an empty one
    if host is not None and not _is_own(host, own):
        return f"Host {host!r} is not this agent's address (DNS rebinding?); use http://127.0.0.1:{own.port}" \
            if own.names & LOOPBACK_NAMES else f"Host {host!r} is not this server's address (DNS rebinding?)"
    if method.upper() in SAFE_METHODS:
        return None
    if origin is not None and not _same_origin(origin, host):
        return f"cross-origin request refused (Origin {origin!r})"
    if (fetch_site or "").lower() in ("cross-site", "same-site"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    return None


class Headers(Protocol):
    """What `refusal` reads of a request's headers: Flask's, Quart's, or any str mapping."""

    def get(self, key: str) -> str | None: ...


def refusal(method: str, headers: Headers, own: OwnAddress) -> str | None:
    """`decide` on a request's headers (Flask's or Quart's headers object, or any mapping)."""
    return decide(method, headers.get("Host"), headers.get("Origin"), headers.get("Sec-Fetch-Site"), own)


def _norm(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_host(host: str) -> tuple[str, int] | None:
    """(name, port) of a Host header; port 80 when absent (plain HTTP); None when malformed."""
    try:
        parts = urlsplit("//" + host.strip())
        name, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not name or parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return _norm(name), 80 if port is None else port


def _is_own(host: str, own: OwnAddress) -> bool:
    split = _split_host(host)
    if split is None or split[1] != own.port:
        return False
    name = split[0]
    if name in own.names:
        return True
    if own.any_ip:
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False
    return False


def _same_origin(origin: str, host: str | None) -> bool:
    """An Origin is this request's own when it is http(s)://<the request's Host>."""
    if host is None or origin.strip().lower() == "null":
        return False
    try:
        parts = urlsplit(origin.strip())
        origin_host = _split_host(parts.netloc)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and origin_host is not None and origin_host == _split_host(host)


def install(app: Quart, own: OwnAddress) -> None:
    """Run `decide` before every request of `app`; a refusal is a 403 with the reason as plain text."""
    from quart import Response, request

    @app.before_request
    async def _guard() -> Response | None:
        reason = refusal(request.method, request.headers, own)
        if reason is None:
            return None
        return Response(reason + "\n", status=403, mimetype="text/plain")

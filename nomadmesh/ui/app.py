"""A stand-alone Quart app serving the UI at /ui/ against one `Target`, and `serve_ui` for `nomadmesh ui`."""
from __future__ import annotations

import errno
from collections.abc import Callable

from quart import Quart, redirect
from werkzeug.wrappers.response import Response as WerkzeugResponse

from nomadmesh.deploy.target import Target, target_from_env
from nomadmesh.errors import NomadMeshError
from nomadmesh.httpserve import HttpServers, bind_socket
from nomadmesh.ui.blueprint import create_ui_blueprint
from nomadmesh.ui.validations import Definitions
from nomadmesh.webguard import OwnAddress, install as install_guard, own_address

URL_PREFIX = "/ui"


def local_target(bind: str, nomad_port: int, consul_port: int) -> Target:
    """The dev agent's own APIs, as the UI it serves reaches them (a wildcard bind via loopback)."""
    host = "127.0.0.1" if bind in ("0.0.0.0", "") else "::1" if bind == "::" else bind
    host = f"[{host}]" if ":" in host else host
    return target_from_env({}, nomad_addr=f"http://{host}:{nomad_port}", consul_addr=f"http://{host}:{consul_port}")


def create_ui_app(target: Target, own: OwnAddress, metrics_url: str | None = None,
                  definitions: Definitions | None = None) -> Quart:
    """The UI for `target`, answering only to `own` (see nomadmesh.webguard); traffic figures from
    the Prometheus at `metrics_url` when given; `plan`'s findings for `definitions` when given."""
    app = Quart("nomadmesh.ui")
    install_guard(app, own)
    app.register_blueprint(create_ui_blueprint(lambda: target, metrics_url, definitions), url_prefix=URL_PREFIX)

    @app.get("/")
    async def _root() -> WerkzeugResponse:
        return redirect(URL_PREFIX + "/")

    return app


class UIError(NomadMeshError):
    """The UI server cannot start (its port is taken, say)."""


def serve_ui(target: Target, bind: str, port: int, on_ready: Callable[[str], None] | None = None,
             definitions: Definitions | None = None,
             metrics_url: str | None = None) -> None:
    """Serve the UI (uvicorn, see nomadmesh.httpserve) until interrupted; `on_ready(url)` once it is served."""
    try:
        sock = bind_socket(bind, port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UIError(f"--port: {bind}:{port} is already in use (choose another with --port)") from None
        raise UIError(f"cannot listen on {bind}:{port}: {e.strerror or e}") from None
    bound = sock.getsockname()[1]  # the port asked for, or the free one the system chose for 0
    servers = HttpServers()
    servers.start([(create_ui_app(target, own_address(bind, bound), metrics_url, definitions), sock)],
                  name="ui-http")
    host = f"[{bind}]" if ":" in bind else bind
    if on_ready:
        on_ready(f"http://{host}:{bound}{URL_PREFIX}/")
    try:
        servers.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        servers.stop()


def mount_ui(app: Quart, bind: str, nomad_port: int, consul_port: int) -> Quart:
    """Add the UI at /ui/ to the dev agent's Consul app, reading the agent's own two APIs."""
    target = local_target(bind, nomad_port, consul_port)
    app.register_blueprint(create_ui_blueprint(lambda: target), url_prefix=URL_PREFIX)
    return app

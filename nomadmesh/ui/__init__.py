"""The nomadmesh web UI: services, sidecars, intentions and topology of any Nomad + Consul.

`create_ui_blueprint(target_provider)` is mounted at /ui/ by the dev agent (on its Consul port) and
by `create_ui_app(target)`, which `nomadmesh ui` serves. It reads only the HTTP APIs.
"""
from nomadmesh.ui.app import create_ui_app
from nomadmesh.ui.blueprint import create_ui_blueprint

__all__ = ["create_ui_app", "create_ui_blueprint"]

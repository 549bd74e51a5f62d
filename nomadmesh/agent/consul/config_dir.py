"""The services of `--config-dir`: registered at start and re-read by `PUT /v1/agent/reload`.

As Consul's agent does on a reload, the directory is the truth for the services it defines: one
added to a file is registered, one edited is re-registered, one removed from the files is
deregistered; services registered over the HTTP API are left alone. Which IDs came from the
directory is kept in the state (meta `config_dir_services`), so a restarted agent still knows.

Every file is read and every definition checked before anything is registered: a reload with a
broken file changes nothing and says which file and field is wrong.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nomadmesh.agent.consul.catalog import Catalog
from nomadmesh.agent.consul.service_defs import ServiceDefError, normalize_service
from nomadmesh.errors import AgentError

log = logging.getLogger("nomadmesh.agent.consul")

META_KEY = "config_dir_services"


def load_service_definitions(config_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Consul service definitions from `config_dir/*.json`: `{"service": {...}}` or `{"services": [...]}`.

    Returns (file name, definition) pairs in file-name order. Keys other than service/services
    (agent settings Consul would also read there) are ignored with a warning.
    """
    if not config_dir.is_dir():
        raise AgentError(f"--config-dir {config_dir}: not a directory")
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(config_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise AgentError(f"{path}: cannot read JSON: {e}") from None
        if not isinstance(doc, dict):
            raise AgentError(f"{path}: must be a JSON object")
        for key in doc:
            if key not in ("service", "services"):
                log.warning("%s: ignoring %r (only service definitions are read from --config-dir)", path, key)
        if "service" in doc:
            if not isinstance(doc["service"], dict):
                raise AgentError(f"{path}: service: must be an object")
            found.append((f"{path}: service", doc["service"]))
        services = doc.get("services", [])
        if not isinstance(services, list):
            raise AgentError(f"{path}: services: must be a list")
        for i, svc in enumerate(services):
            if not isinstance(svc, dict):
                raise AgentError(f"{path}: services[{i}]: must be an object")
            found.append((f"{path}: services[{i}]", svc))
    return found


class ConfigDirServices:
    """Keeps the catalog's services in step with `config_dir` (None: there is none, nothing to do)."""

    def __init__(self, catalog: Catalog, config_dir: Path | None) -> None:
        self.catalog = catalog
        self.config_dir = config_dir

    def sync(self) -> list[str]:
        """Register the directory's services and deregister the ones it no longer defines.

        Returns the registered IDs. Raises AgentError (`<file>: <field>: <message>`) before
        changing anything when a file or a definition is malformed."""
        if self.config_dir is None:
            return []
        checked: list[tuple[str, dict[str, Any]]] = []
        for where, definition in load_service_definitions(self.config_dir):
            try:
                checked.append((where, normalize_service(definition)))
            except ServiceDefError as e:
                raise AgentError(f"{where}: {e}") from None
        registered: list[str] = []
        for where, definition in checked:
            try:
                ids = self.catalog.register_service(definition)
            except ServiceDefError as e:
                raise AgentError(f"{where}: {e}") from None
            registered.append(definition.get("ID") or definition["Name"])
            log.info("%s: registered %s", where, ", ".join(ids))
        state = self.catalog.ctx.state
        previous = state.get("meta", META_KEY)
        for gone in sorted(set(previous.value if previous else []) - set(registered)):
            self.catalog.deregister_service(gone)
            log.info("%s: service %r no longer defined, deregistered", self.config_dir, gone)
        with state.write() as txn:
            txn.put("meta", META_KEY, sorted(set(registered)))
        return registered

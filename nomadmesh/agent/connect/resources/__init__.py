"""Pure builders: ProxySnapshot → Envoy resources, one module per type (Consul's resources.go).

    build_resources(snap) -> {type_url: [message, ...]}   (a ProxySnapshot, or an IngressSnapshot)

No I/O and no state: the cache versions what these return and the ADS server sends it.
"""
from __future__ import annotations

from google.protobuf.message import Message

from nomadmesh.agent.connect.ingress_snapshot import IngressSnapshot
from nomadmesh.agent.connect.resources.clusters import clusters_from_snapshot
from nomadmesh.agent.connect.resources.common import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, SECRET
from nomadmesh.agent.connect.resources.endpoints import endpoints_from_snapshot
from nomadmesh.agent.connect.resources.ingress import build_ingress_resources
from nomadmesh.agent.connect.resources.listeners import listeners_from_snapshot
from nomadmesh.agent.connect.resources.routes import routes_from_snapshot
from nomadmesh.agent.connect.resources.secrets import secrets_from_snapshot
from nomadmesh.agent.connect.snapshot import ProxySnapshot

__all__ = ["CLUSTER", "ENDPOINT", "LISTENER", "PUSH_ORDER", "ROUTE", "SECRET", "build_resources"]

BUILDERS = {
    CLUSTER: clusters_from_snapshot,
    ENDPOINT: endpoints_from_snapshot,
    SECRET: secrets_from_snapshot,
    LISTENER: listeners_from_snapshot,
    ROUTE: routes_from_snapshot,
}


def build_resources(snap: ProxySnapshot | IngressSnapshot) -> dict[str, list[Message]]:
    """Per kind, as Consul's resources.go switches on the snapshot's kind: a sidecar or a gateway."""
    if isinstance(snap, IngressSnapshot):
        return build_ingress_resources(snap)
    return {type_url: build(snap) for type_url, build in BUILDERS.items()}

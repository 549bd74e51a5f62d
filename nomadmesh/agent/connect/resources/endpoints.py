"""EDS: one ClusterLoadAssignment per upstream cluster, listing its healthy instances.

EDS rather than STATIC clusters with inline endpoints, as Consul does: instances come and go far
more often than upstreams change, and with EDS such a change resends only the endpoints, leaving
clusters (and their TLS contexts and connection pools) untouched.
"""
from __future__ import annotations

from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2, endpoint_pb2

from nomadmesh.agent.connect.resources.common import socket_address
from nomadmesh.agent.connect.snapshot import ProxySnapshot


def load_assignment(cluster: str, endpoints: tuple[tuple[str, int], ...]) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster,
        endpoints=[ep_pb2.LocalityLbEndpoints(lb_endpoints=[
            ep_pb2.LbEndpoint(endpoint=ep_pb2.Endpoint(address=socket_address(ip, port)))
            for ip, port in endpoints
        ])],
    )


def endpoints_from_snapshot(snap: ProxySnapshot) -> list[endpoint_pb2.ClusterLoadAssignment]:
    return [load_assignment(snap.upstream_cluster(up), up.endpoints) for up in snap.upstreams]

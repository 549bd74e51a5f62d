"""EDS: one ClusterLoadAssignment per upstream cluster (a chain target), listing its healthy
instances; a target with failover lists each failover target's instances at the next priority
(1, 2...), so Envoy sends there only while the target has too few healthy hosts.

EDS rather than STATIC clusters with inline endpoints, as Consul does: instances come and go far
more often than upstreams change, and with EDS such a change resends only the endpoints, leaving
clusters (and their TLS contexts and connection pools) untouched.
"""
from __future__ import annotations

from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2, endpoint_pb2

from nomadmesh.agent.connect.resources.common import socket_address
from nomadmesh.agent.connect.snapshot import ProxySnapshot


def _locality(endpoints: tuple[tuple[str, int], ...], priority: int = 0) -> ep_pb2.LocalityLbEndpoints:
    return ep_pb2.LocalityLbEndpoints(priority=priority, lb_endpoints=[
        ep_pb2.LbEndpoint(endpoint=ep_pb2.Endpoint(address=socket_address(ip, port)))
        for ip, port in endpoints
    ])


def load_assignment(cluster: str, endpoints: tuple[tuple[str, int], ...],
                    failover: tuple[tuple[tuple[str, int], ...], ...] = ()) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster,
        endpoints=[_locality(endpoints), *(_locality(eps, i) for i, eps in enumerate(failover, start=1))],
    )


def endpoints_from_snapshot(snap: ProxySnapshot) -> list[endpoint_pb2.ClusterLoadAssignment]:
    out: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
    for up in snap.upstreams:
        for target, failover, _ in snap.upstream_clusters(up):
            out.setdefault(target.sni, load_assignment(
                target.sni, snap.target_endpoints(up, target),
                tuple(snap.target_endpoints(up, t) for t in failover)))
    return list(out.values())

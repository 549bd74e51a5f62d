"""CDS: `local_app` (the service itself), `exposed_cluster_<port>`, and per upstream one mTLS
cluster per resolver target of its discovery chain, named by the target's SNI
(`[<subset>.]<service>.default.<dc>.internal.<trust domain>`), with the resolver's connect timeout.
A target with failover also accepts the failover targets' identities: their instances are that
cluster's lower-priority endpoints (endpoints.py)."""
from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, protocol_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as hpo_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import duration_pb2

from nomadmesh.agent.connect.resources.common import LOCAL_APP, ROOTS_SECRET, ads_source, pack, sds_ref, tls_params
from nomadmesh.agent.connect.resources.endpoints import load_assignment
from nomadmesh.agent.connect.snapshot import ProxySnapshot, UpstreamSnap

CONNECT_TIMEOUT = duration_pb2.Duration(seconds=5)
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def exposed_cluster_name(port: int) -> str:
    return f"exposed_cluster_{port}"


def static_cluster(name: str, address: str, port: int, http2: bool = False) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=CONNECT_TIMEOUT,
        load_assignment=load_assignment(name, ((address, port),)),
    )
    if http2:
        set_http2(cluster)
    return cluster


def upstream_clusters(snap: ProxySnapshot, up: UpstreamSnap) -> list[cluster_pb2.Cluster]:
    """EDS clusters named by SNI; TLS with our leaf, trusting our roots, and only the targets' IDs."""
    http2 = snap.chain_of(up).protocol in ("http2", "grpc")
    out = []
    for target, failover, load_balancer in snap.upstream_clusters(up):
        timeout = duration_pb2.Duration()
        timeout.FromNanoseconds(target.connect_timeout_ns)
        uris = tuple(dict.fromkeys(snap.target_uri(t) for t in (target, *failover)))
        cluster = mtls_cluster(target.sni, uris, snap.service, timeout)
        if http2:
            set_http2(cluster)
        apply_load_balancer(cluster, load_balancer)
        out.append(cluster)
    return out


LB_POLICIES = {"random": cluster_pb2.Cluster.RANDOM, "round_robin": cluster_pb2.Cluster.ROUND_ROBIN,
               "least_request": cluster_pb2.Cluster.LEAST_REQUEST, "ring_hash": cluster_pb2.Cluster.RING_HASH,
               "maglev": cluster_pb2.Cluster.MAGLEV}


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: dict[str, Any]) -> None:
    """A resolver's LoadBalancer on its target's cluster (Consul's injectLBToCluster); the hash
    policies go on the routes (routes.py). No policy: Envoy's default, round robin."""
    policy = lb.get("Policy") or ""
    if not policy:
        return
    if policy not in LB_POLICIES:
        raise ValueError(f"unsupported load balancer policy {policy!r} for cluster {cluster.name!r}")
    cluster.lb_policy = LB_POLICIES[policy]
    least = lb.get("LeastRequestConfig") or {}
    if policy == "least_request" and least.get("ChoiceCount"):
        cluster.least_request_lb_config.choice_count.value = int(least["ChoiceCount"])
    ring = lb.get("RingHashConfig") or {}
    if policy == "ring_hash" and ring:
        if ring.get("MinimumRingSize"):
            cluster.ring_hash_lb_config.minimum_ring_size.value = int(ring["MinimumRingSize"])
        if ring.get("MaximumRingSize"):
            cluster.ring_hash_lb_config.maximum_ring_size.value = int(ring["MaximumRingSize"])


def set_http2(cluster: cluster_pb2.Cluster) -> None:
    opts = hpo_pb2.HttpProtocolOptions(explicit_http_config=hpo_pb2.HttpProtocolOptions.ExplicitHttpConfig(
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions()))
    cluster.typed_extension_protocol_options[HTTP_OPTIONS].CopyFrom(pack(opts))


def mtls_cluster(name: str, destination_uri: str | tuple[str, ...], leaf_secret: str,
                 connect_timeout: duration_pb2.Duration = CONNECT_TIMEOUT) -> cluster_pb2.Cluster:
    """An EDS cluster `name` (the destination's SNI) dialled over TLS with the `leaf_secret` identity,
    accepting only a server whose URI SAN is `destination_uri` (or one of them). Sidecars and gateways share it."""
    uris = (destination_uri,) if isinstance(destination_uri, str) else destination_uri
    sans = [common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI,
        matcher=string_pb2.StringMatcher(exact=uri),
    ) for uri in uris]
    tls = tls_pb2.UpstreamTlsContext(
        sni=name,
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=tls_params(),
            tls_certificate_sds_secret_configs=[sds_ref(leaf_secret)],
            combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
                default_validation_context=common_pb2.CertificateValidationContext(
                    match_typed_subject_alt_names=sans),
                validation_context_sds_secret_config=sds_ref(ROOTS_SECRET),
            ),
        ),
    )
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source()),
        connect_timeout=connect_timeout,
        transport_socket=base_pb2.TransportSocket(name="envoy.transport_sockets.tls",
                                                  typed_config=pack(tls)),
    )


def clusters_from_snapshot(snap: ProxySnapshot) -> list[cluster_pb2.Cluster]:
    out = [static_cluster(LOCAL_APP, snap.local_app.address, snap.local_app.port)]
    for port in sorted({p.local_path_port for p in snap.exposed_paths} - {snap.local_app.port}):
        http2 = any(p.protocol == "http2" for p in snap.exposed_paths if p.local_path_port == port)
        out.append(static_cluster(exposed_cluster_name(port), snap.local_app.address, port, http2))
    seen = {c.name for c in out}
    for up in snap.upstreams:  # two upstreams may share a target: one cluster
        for cluster in upstream_clusters(snap, up):
            if cluster.name not in seen:
                seen.add(cluster.name)
                out.append(cluster)
    return out

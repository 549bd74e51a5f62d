"""Small shared pieces of Envoy config: addresses, ADS config sources, SDS references, Any packing."""
from __future__ import annotations

from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

ROOTS_SECRET = "ROOTCA"  # name of the SDS secret holding the trusted roots, as in Consul
LOCAL_APP = "local_app"

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
# The order in which a change is pushed: clusters exist before endpoints fill them, secrets
# before the listeners that present them, listeners before the routes they ask for (RDS), and
# a route names only clusters sent before it.
PUSH_ORDER = (CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE)


def pack(msg: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def sds_ref(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=ads_source())


def tls_params() -> common_pb2.TlsParameters:
    # Envoy's client side stops at TLS 1.2 unless told otherwise; the mesh is ours, use 1.3.
    return common_pb2.TlsParameters(
        tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
        tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    )

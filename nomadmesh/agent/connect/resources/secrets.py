"""SDS secrets: the proxy's leaf (named after its service) and the trusted roots (`ROOTCA`)."""
from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from nomadmesh.agent.connect.resources.common import ROOTS_SECRET
from nomadmesh.agent.connect.snapshot import ProxySnapshot


def leaf_and_roots(service: str, cert_pem: str, key_pem: str, roots_pem: str) -> list[secret_pb2.Secret]:
    """The leaf secret (named after the service whose identity it is) and the roots (sidecars and gateways)."""
    leaf = secret_pb2.Secret(
        name=service,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_string=cert_pem),
            private_key=base_pb2.DataSource(inline_string=key_pem),
        ),
    )
    roots = secret_pb2.Secret(
        name=ROOTS_SECRET,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_string=roots_pem)
        ),
    )
    return [leaf, roots]


def secrets_from_snapshot(snap: ProxySnapshot) -> list[secret_pb2.Secret]:
    return leaf_and_roots(snap.service, snap.leaf_cert_pem, snap.leaf_key_pem, snap.roots_pem)

"""SDS secrets: the proxy's leaf (named after its service) and the trusted roots (`ROOTCA`)."""
from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from nomadmesh.agent.connect.resources.common import ROOTS_SECRET
from nomadmesh.agent.connect.snapshot import ProxySnapshot


def secrets_from_snapshot(snap: ProxySnapshot) -> list[secret_pb2.Secret]:
    leaf = secret_pb2.Secret(
        name=snap.service,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_string=snap.leaf_cert_pem),
            private_key=base_pb2.DataSource(inline_string=snap.leaf_key_pem),
        ),
    )
    roots = secret_pb2.Secret(
        name=ROOTS_SECRET,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_string=snap.roots_pem)
        ),
    )
    return [leaf, roots]

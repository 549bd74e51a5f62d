"""Connect identities as Consul names them (consul-nomad-facts §5). Pure string functions.

    trust domain   <cluster-id>.consul
    root URI SAN   spiffe://<td>
    service ID     spiffe://<td>/ns/default/dc/<dc>/svc/<name>
    SNI / cluster  <name>.default.<dc>.internal.<td>
"""
from __future__ import annotations

NAMESPACE = "default"


def trust_domain(cluster_id: str) -> str:
    return f"{cluster_id}.consul"


def root_uri(td: str) -> str:
    return f"spiffe://{td}"


def service_uri(td: str, datacenter: str, service: str) -> str:
    return f"spiffe://{td}/ns/{NAMESPACE}/dc/{datacenter}/svc/{service}"


def sni(td: str, datacenter: str, service: str) -> str:
    """The SNI of an upstream, which is also the name of its Envoy cluster."""
    return f"{service}.{NAMESPACE}.{datacenter}.internal.{td}"

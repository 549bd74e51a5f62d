"""Consul's /v1/catalog/gateway-services/<gateway>: the services a gateway's config entry links
to it, as Consul derives them from the `ingress-gateway` and `terminating-gateway` entries
(a `*` service of an ingress listener stands for every catalog service, marked FromWildcard).
No entry: an empty list, as Consul answers."""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.consul import config_store
from nomadmesh.agent.http.common import block, current_ctx, json_response
from nomadmesh.agent.http.parts import consul_parts

bp = Blueprint("consul_gateways", __name__)

_TLS = {"CAFile": "", "CertFile": "", "KeyFile": "", "SNI": ""}


def _service_names(exclude: str) -> list[str]:
    rows = consul_parts().catalog.catalog_rows()
    return sorted({r["ServiceName"] for r in rows if not r.get("ServiceKind")} - {exclude, "consul"})


def gateway_services(gateway: str) -> list[dict[str, Any]]:
    state = current_ctx().state
    out: list[dict[str, Any]] = []
    ingress = state.get(config_store.KIND, config_store.key("ingress-gateway", gateway))
    if ingress is not None:
        indexes = {"CreateIndex": ingress.create_index, "ModifyIndex": ingress.modify_index}
        for listener in ingress.value.get("Listeners") or []:
            for svc in listener.get("Services") or []:
                names = _service_names(gateway) if svc.get("Name") == "*" else [svc.get("Name")]
                for name in names:
                    out.append({"Gateway": {"Name": gateway}, "Service": {"Name": name},
                                "GatewayKind": "ingress-gateway", "Port": listener.get("Port", 0),
                                "Protocol": listener.get("Protocol") or "tcp", "Hosts": svc.get("Hosts") or None,
                                **_TLS, "FromWildcard": svc.get("Name") == "*", **indexes})
    terminating = state.get(config_store.KIND, config_store.key("terminating-gateway", gateway))
    if terminating is not None:
        indexes = {"CreateIndex": terminating.create_index, "ModifyIndex": terminating.modify_index}
        for svc in terminating.value.get("Services") or []:
            tls = {k: svc.get(k) or "" for k in _TLS}
            out.append({"Gateway": {"Name": gateway}, "Service": {"Name": svc.get("Name")},
                        "GatewayKind": "terminating-gateway", **tls, "FromWildcard": False, **indexes})
    return out


@bp.get("/v1/catalog/gateway-services/<path:gateway>")
async def gateway_services_view(gateway: str) -> Response:
    index = await block(current_ctx().state, (config_store.KIND, "service"))
    return json_response(gateway_services(gateway), index=index)

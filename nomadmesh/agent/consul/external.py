"""Catalog registrations: /v1/catalog/register and /deregister (Consul's Catalog.Register and
Deregister RPCs), for what runs outside the agent, such as a database on another host.

Stored apart from the agent's own services (which /v1/agent/* lists and whose checks really run):
nodes as kind `ext_node` (key = node name), their services as `ext_service` (key = node + U+001F +
service ID, the document keeps `_Node`) and checks as `ext_check` (same key scheme). No agent runs
those checks: they keep the status they were registered with (critical when none is given, as
Consul's state store defaults it). The catalog and health endpoints merge them with the agent's
own node; Connect sees an external service only when it is Connect-capable (a connect-proxy or
Connect-native), as Consul's /v1/health/connect does.
"""
from __future__ import annotations

import uuid
from typing import Any

from nomadmesh.agent.consul.service_defs import ServiceDefError, agent_service, normalize_check, normalize_service
from nomadmesh.agent.context import AgentContext

NODE_KIND, SERVICE_KIND, CHECK_KIND = "ext_node", "ext_service", "ext_check"
KINDS = (NODE_KIND, SERVICE_KIND, CHECK_KIND)
_SEP = "\x1f"  # ASCII unit separator: not in node names (SQLite substr() stops at NUL)
_STATUSES = ("passing", "warning", "critical")


class RegistrationError(Exception):
    """A registration Consul's server refuses (answered 500 with this text, as Consul's RPC errors)."""


def _key(node: str, item_id: str) -> str:
    return f"{node}{_SEP}{item_id}"


def _field(body: dict[str, Any], name: str) -> Any:
    """A top-level field in any letter case (Consul's decoder folds case)."""
    for key, value in body.items():
        if str(key).lower() == name.lower():
            return value
    return None


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RegistrationError(f"{where}: must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RegistrationError(f"{where}: must be a string")
    return value


class ExternalCatalog:
    """Nodes, services and checks registered through the catalog API."""

    def __init__(self, ctx: AgentContext):
        self.ctx = ctx

    # --- writes -------------------------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> None:
        cfg = self.ctx.config
        node = _string(_field(body, "Node"), "Node")
        if not node:
            raise RegistrationError("Must provide node")
        if _SEP in node or "\x00" in node:
            raise RegistrationError(f"Node {node!r}: control characters are not allowed")
        address = _string(_field(body, "Address"), "Address")
        skip_node_update = bool(_field(body, "SkipNodeUpdate"))
        if not address and not skip_node_update:
            raise RegistrationError("Must provide address if SkipNodeUpdate is not set")
        node_id = _string(_field(body, "ID"), "ID")
        if node_id:
            try:
                uuid.UUID(node_id)
            except ValueError:
                raise RegistrationError(f"Invalid node ID: uuid string is wrong length or format: {node_id!r}") \
                    from None
        datacenter = _string(_field(body, "Datacenter"), "Datacenter") or cfg.datacenter
        if datacenter != cfg.datacenter:
            raise RegistrationError("No path to datacenter")
        service = self._service(_field(body, "Service"), datacenter)
        checks = self._checks(body, node)
        node_doc = {
            "ID": node_id, "Node": node, "Address": address, "Datacenter": datacenter,
            "TaggedAddresses": _str_map(_field(body, "TaggedAddresses"), "TaggedAddresses"),
            "Meta": _str_map(_field(body, "NodeMeta"), "NodeMeta"),
        }
        if node == cfg.node_name:
            raise RegistrationError(f"Node {node!r} is the agent's own node: register its services through "
                                    "/v1/agent/service/register")
        with self.ctx.state.write() as txn:
            current = txn.get(NODE_KIND, node)
            if current is not None and skip_node_update:
                node_doc = dict(current.value)
            if current is None or current.value != node_doc:  # an unchanged node keeps its ModifyIndex
                txn.put(NODE_KIND, node, node_doc)
            if service is not None:
                txn.put(SERVICE_KIND, _key(node, service["ID"]), dict(service, _Node=node))
            for chk in checks:
                if chk["ServiceID"] and txn.get(SERVICE_KIND, _key(node, chk["ServiceID"])) is None:
                    raise RegistrationError("Missing service registration")
                if chk["ServiceID"]:
                    svc = txn.get(SERVICE_KIND, _key(node, chk["ServiceID"]))
                    assert svc is not None
                    chk["ServiceName"], chk["ServiceTags"] = svc.value["Service"], svc.value["Tags"]
                txn.put(CHECK_KIND, _key(node, chk["CheckID"]), chk)

    def deregister(self, body: dict[str, Any]) -> tuple[str, list[str], bool]:
        """Remove a check, a service (with its checks) or a whole node; returns the node, the
        check IDs removed and whether the node itself went."""
        node = _string(_field(body, "Node"), "Node")
        if not node:
            raise RegistrationError("Must provide node")
        datacenter = _string(_field(body, "Datacenter"), "Datacenter")
        if datacenter and datacenter != self.ctx.config.datacenter:
            raise RegistrationError("No path to datacenter")  # Consul forwards it there; the agent knows no other
        service_id = _string(_field(body, "ServiceID"), "ServiceID")
        check_id = _string(_field(body, "CheckID"), "CheckID")
        node_gone = not service_id and not check_id
        with self.ctx.state.write() as txn:
            removed = [rec.value["CheckID"] for rec in txn.records(CHECK_KIND, node + _SEP)
                       if node_gone or rec.value["CheckID"] == check_id
                       or (service_id and rec.value.get("ServiceID") == service_id)]
            for removed_id in removed:
                txn.delete(CHECK_KIND, _key(node, removed_id))
            if service_id:
                txn.delete(SERVICE_KIND, _key(node, service_id))
            if node_gone:
                txn.delete(NODE_KIND, node)
                txn.delete_prefix(SERVICE_KIND, node + _SEP)
        return node, removed, node_gone

    def _service(self, raw: Any, datacenter: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        if isinstance(raw, dict):
            # The catalog spells the name `Service` (AgentService), the agent API `Name`.
            raw = {("Name" if str(k).lower() == "service" else k): v for k, v in raw.items()}
        try:
            svc = normalize_service(raw)
        except ServiceDefError as e:
            if "missing service name" in str(e):
                raise RegistrationError("Must provide service name (Service.Service) when service ID is provided") \
                    from None
            raise RegistrationError(f"Service.{e}") from None
        if (svc.get("Connect") or {}).get("SidecarService"):
            raise RegistrationError("Service.Connect.SidecarService: a sidecar is registered as its own "
                                    "connect-proxy service in the catalog")
        if svc.get("Kind") == "connect-proxy" and not (svc.get("Proxy") or {}).get("DestinationServiceName"):
            raise RegistrationError("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
        if svc.get("Kind") == "connect-proxy" and not svc.get("Port"):
            raise RegistrationError("Port must be set for a Connect proxy")
        return agent_service(svc, datacenter)

    def _checks(self, body: dict[str, Any], node: str) -> list[dict[str, Any]]:
        raws = []
        if _field(body, "Check") is not None:
            raws.append(_field(body, "Check"))
        more = _field(body, "Checks")
        if more is not None:
            if not isinstance(more, list):
                raise RegistrationError("Checks: must be a list")
            raws.extend(more)
        out: list[dict[str, Any]] = []
        for i, raw in enumerate(raws):
            try:
                chk = normalize_check(raw, f"Checks[{i}]")
            except ServiceDefError as e:
                raise RegistrationError(str(e)) from None
            check_node = _string((raw or {}).get("Node") if isinstance(raw, dict) else None, "Check.Node") or node
            if check_node != node:
                raise RegistrationError(f"Check node '{check_node}' does not match node '{node}'")
            check_id = chk.get("CheckID") or chk.get("ID") or chk.get("Name") or ""
            if not check_id:
                raise RegistrationError("Must provide a CheckID or a Name for a check")
            status = chk.get("Status") or "critical"
            if status not in _STATUSES:
                raise RegistrationError(f"Check {check_id}: invalid status {status!r}")
            service_id = chk.get("ServiceID") or ""
            definition = {k: chk[k] for k in ("HTTP", "TCP", "Interval", "Timeout", "TTL") if k in chk}
            out.append({
                "Node": node, "CheckID": check_id, "Name": chk.get("Name") or check_id, "Status": status,
                "Notes": chk.get("Notes") or "", "Output": _string(raw.get("Output"), "Check.Output"),
                "ServiceID": service_id, "ServiceName": "", "ServiceTags": [], "Type": "",
                "Interval": chk.get("Interval") or "", "Timeout": chk.get("Timeout") or "", "ExposedPort": 0,
                "Definition": definition,
            })
        return out

    # --- reads --------------------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return [dict(r.value, CreateIndex=r.create_index, ModifyIndex=r.modify_index)
                for r in self.ctx.state.records(NODE_KIND)]

    def node(self, name: str) -> dict[str, Any] | None:
        rec = self.ctx.state.get(NODE_KIND, name)
        return dict(rec.value, CreateIndex=rec.create_index, ModifyIndex=rec.modify_index) if rec else None

    def services(self, node: str = "") -> list[dict[str, Any]]:
        """Services with `_Node`, of one node or all."""
        return [dict(r.value, CreateIndex=r.create_index, ModifyIndex=r.modify_index)
                for r in self.ctx.state.records(SERVICE_KIND, node + _SEP if node else "")]

    def connect_proxies(self) -> tuple[dict[str, Any], ...]:
        """Registered connect-proxy services as Connect sees them: Address defaulted to their node's,
        `_Healthy` when every check of the node and of the service passes."""
        nodes = {n["Node"]: n for n in self.nodes()}
        checks = self.checks()
        out = []
        for svc in self.services():
            node = nodes.get(svc["_Node"])
            if node is None or svc.get("Kind") != "connect-proxy" or not svc.get("Port"):
                continue
            own = [c for c in checks if c["Node"] == node["Node"] and c.get("ServiceID") in ("", svc["ID"])]
            out.append(dict(svc, Address=svc.get("Address") or node["Address"],
                            _Healthy=all(c["Status"] == "passing" for c in own)))
        return tuple(out)

    def checks(self, node: str = "") -> list[dict[str, Any]]:
        return [dict(r.value, CreateIndex=r.create_index, ModifyIndex=r.modify_index)
                for r in self.ctx.state.records(CHECK_KIND, node + _SEP if node else "")]

"""The agent's Consul catalog: services and their health checks, kept in State, checks really run.

Services are stored as Consul AgentService documents (kind `service`, key = service ID) and checks
as HealthCheck documents (kind `check`, key = check ID, with the check's `Definition` so a
restarted agent can run it again). Every change, including each check status change, is a State
write, so blocking queries on the catalog and health endpoints wake up on it.

http and tcp checks run in `runtime.checks.CheckRunner`; alias checks (the sidecar's "Connect
Sidecar Aliasing" check) are computed here from the aliased service's checks whenever those change;
ttl checks keep the status they were given.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from nomadmesh.agent.consul.external import ExternalCatalog
from nomadmesh.agent.consul.service_defs import (
    SIDECAR_PORT_MAX,
    SIDECAR_PORT_MIN,
    ServiceDefError,
    agent_check,
    expand,
    normalize_check,
    normalize_service,
    public,
    with_default_tagged_addresses,
)
from nomadmesh.agent.context import AgentContext
from nomadmesh.agent.duration_seconds import parse_duration
from nomadmesh.agent.runtime.checks import CheckRunner, CheckSpec
from nomadmesh.agent.state import Txn

CONSUL_VERSION = "1.21.0"  # the Consul release whose API this agent follows

log = logging.getLogger("nomadmesh.agent.consul.catalog")

_SEVERITY = {"passing": 0, "warning": 1, "critical": 2}
NODE_MAINTENANCE_ID = "_node_maintenance"
SERVICE_MAINTENANCE_PREFIX = "_service_maintenance:"
_DEFAULT_REASON = "Maintenance mode is enabled for this {}, but no reason was provided. This is a default message."


class NotTTLError(ValueError):
    """A TTL update for a check that is not a TTL check (Consul's 500 text)."""


class UnknownServiceError(LookupError):
    """No service is registered with that ID (Consul's 404 text)."""

    def __init__(self, service_id: str):
        super().__init__(f'No service registered with ID "{service_id}"')


def worst(statuses: list[str]) -> str:
    return max(statuses, key=lambda s: _SEVERITY.get(s, 2)) if statuses else "passing"


def _alias_result(checks: list[dict[str, Any]], service_found: bool) -> tuple[str, str]:
    if not service_found:
        return "critical", "Service not found"
    status = worst([c["Status"] for c in checks])
    if not checks:
        return "passing", "No checks found."
    return status, "All checks passing." if status == "passing" else f"Aliased checks are {status}."


class Catalog:
    """Consul's agent-local service registry for the one node of the dev agent."""

    def __init__(self, ctx: AgentContext):
        self.ctx = ctx
        self._runner = CheckRunner(self._on_status)
        self._lock = threading.Lock()  # one registration at a time: sidecar ports are picked from state
        self._started = False
        self._status_listeners: list[Callable[[str, str], None]] = []
        self._node_listeners: list[Callable[[str], None]] = []
        self._ttl_lock = threading.Lock()
        self._ttl_timers: dict[str, threading.Timer] = {}  # TTL check ID -> its expiry
        self.external = ExternalCatalog(ctx)  # nodes and services registered through /v1/catalog/register

    # --- identity ---------------------------------------------------------------------------

    @property
    def node_name(self) -> str:
        return self.ctx.config.node_name

    def node(self) -> dict[str, Any]:
        """The one node, in Consul's catalog Node shape."""
        address = self.ctx.config.bind if self.ctx.config.bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return {
            "ID": self.ctx.node_id,
            "Node": self.node_name,
            "Address": address,
            "Datacenter": self.ctx.config.datacenter,
            "TaggedAddresses": {"lan": address, "lan_ipv4": address, "wan": address, "wan_ipv4": address},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    def serf_check(self) -> dict[str, Any]:
        """The node health check every Consul node carries; always passing on the dev agent."""
        return {
            "Node": self.node_name, "CheckID": "serfHealth", "Name": "Serf Health Status",
            "Status": "passing", "Notes": "", "Output": "Agent alive and reachable", "ServiceID": "",
            "ServiceName": "", "ServiceTags": [], "Type": "", "Interval": "", "Timeout": "",
            "ExposedPort": 0, "Definition": {}, "CreateIndex": 1, "ModifyIndex": 1,
        }

    def server_service(self) -> dict[str, Any]:
        """The `consul` service every Consul server's leader registers on its node (server RPC port
        8300), which the catalog and health endpoints list beside the agent's own services."""
        return {
            "ID": "consul", "Service": "consul", "Tags": [], "Address": "", "Port": 8300,
            "Meta": {"raft_version": "3", "serf_protocol_current": "2", "serf_protocol_max": "5",
                     "serf_protocol_min": "1", "version": CONSUL_VERSION},
            "Weights": {"Passing": 1, "Warning": 1}, "EnableTagOverride": False,
            "Datacenter": self.ctx.config.datacenter, "CreateIndex": 1, "ModifyIndex": 1,
        }

    def _catalog_services(self) -> list[dict[str, Any]]:
        """The services of the agent's node as the catalog has them: `consul`, then the agent's."""
        return [self.server_service(), *self.services()]

    def has_node(self, name: str) -> bool:
        return name == self.node_name or self.external.node(name) is not None

    def nodes(self) -> list[dict[str, Any]]:
        """The agent's node and the ones registered through the catalog, by name."""
        return sorted([self.node(), *self.external.nodes()], key=lambda n: n["Node"])

    def node_doc(self, name: str) -> dict[str, Any] | None:
        return self.node() if name == self.node_name else self.external.node(name)

    def node_services(self, name: str) -> list[dict[str, Any]]:
        if name == self.node_name:
            return self._catalog_services()
        return [public(s) for s in self.external.services(name)]

    def node_checks(self, name: str) -> list[dict[str, Any]]:
        """A node's checks as /v1/health/node lists them (serfHealth first on the agent's node)."""
        if name == self.node_name:
            return [self.serf_check()] + [public(c) for c in self.checks()]
        return [public(c) for c in self.external.checks(name)]

    def all_checks(self) -> list[dict[str, Any]]:
        """Every node's checks, the agent's first."""
        return self.node_checks(self.node_name) + [public(c) for c in self.external.checks()]

    def check_status(self, node: str, check_id: str) -> str | None:
        """A check's status on `node`; None when no such check is registered there."""
        if node != self.node_name:
            ext = [c for c in self.external.checks(node) if c["CheckID"] == check_id]
            return ext[0]["Status"] if ext else None
        if check_id == "serfHealth":
            return "passing"
        rec = self.ctx.state.get("check", check_id)
        return rec.value["Status"] if rec else None

    def deregister_external(self, body: dict[str, Any]) -> None:
        """/v1/catalog/deregister; sessions bound to what goes are told, as Consul ends them."""
        node, removed, node_gone = self.external.deregister(body)
        for check_id in removed:
            self._notify(check_id, "deregistered")
        if node_gone:
            for listener in self._node_listeners:
                listener(node)

    def add_node_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(node)` when a catalog-registered node is deregistered."""
        self._node_listeners.append(listener)

    def add_status_listener(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(check_id, status)` after each check status change, and with status
        `deregistered` when a check goes away (sessions bound to it end on either)."""
        self._status_listeners.append(listener)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run the checks already in the state (a restarted agent picks up where it was)."""
        self._started = True
        for chk in self.ctx.state.values("check"):
            self._run(chk)

    def stop(self) -> None:
        self._started = False
        self._runner.stop()
        with self._ttl_lock:
            timers, self._ttl_timers = list(self._ttl_timers.values()), {}
        for timer in timers:
            timer.cancel()

    # --- registration -------------------------------------------------------------------------

    def register_service(self, svc: dict[str, Any], replace_existing_checks: bool = True) -> list[str]:
        """Register a service (any spelling Consul accepts) and its sidecar; returns the IDs.

        Raises ServiceDefError (a ValueError naming the field) for a malformed definition.
        Re-registering an ID replaces it: a sidecar it no longer defines goes away, and so do its
        old checks with `replace_existing_checks` (Consul's `?replace-existing-checks`, which the
        HTTP API defaults to off); a check whose definition did not change keeps its status.
        """
        normalized = normalize_service(svc)
        with self._lock:
            ids = self._store(normalized, replace_existing_checks)
        return ids

    def _store(self, normalized: dict[str, Any], replace_checks: bool) -> list[str]:
        state = self.ctx.state
        parent_id = normalized.get("ID") or normalized["Name"]
        sidecar_id_of_old = [s.key for s in state.records("service") if s.value.get("_SidecarOf") == parent_id]
        used = {
            int(r.value.get("Port") or 0) for r in state.records("service")
            if r.key not in sidecar_id_of_old and r.key != parent_id
            and SIDECAR_PORT_MIN <= int(r.value.get("Port") or 0) <= SIDECAR_PORT_MAX
        }
        exp = expand(normalized, self.ctx.config.datacenter, self.node_name, used)
        new_ids = [s["ID"] for s in exp.services]
        # Two checks with one CheckID: the last wins, as in Consul's agent (its checks are a map).
        checks = list({c["CheckID"]: c for c in exp.checks}.values())
        started: list[dict[str, Any]] = []
        stopped: list[str] = []
        with state.write() as txn:
            replaced = set(new_ids) | set(sidecar_id_of_old)
            old_checks = {r.key: r.value for r in txn.records("check") if r.value.get("ServiceID") in replaced}
            for sid in sidecar_id_of_old:
                if sid not in new_ids:
                    txn.delete("service", sid)
            for doc in map(with_default_tagged_addresses, exp.services):
                old = txn.get("service", doc["ID"])
                doc["CreateIndex"] = old.create_index if old else txn.index
                doc["ModifyIndex"] = txn.index
                txn.put("service", doc["ID"], doc)
            for chk in checks:
                previous = old_checks.pop(chk["CheckID"], None)
                if previous is not None and previous.get("Definition") == chk["Definition"] \
                        and previous.get("ServiceID") == chk["ServiceID"]:
                    chk["Status"], chk["Output"] = previous["Status"], previous["Output"]
                    chk["CreateIndex"] = previous.get("CreateIndex", txn.index)
                else:
                    chk["CreateIndex"] = txn.index
                    started.append(chk)
                chk["ModifyIndex"] = txn.index
                txn.put("check", chk["CheckID"], chk)
            for check_id, old_check in old_checks.items():
                kept = not replace_checks or old_check.get("Type") == "maintenance"
                if kept and old_check.get("ServiceID") in new_ids:
                    continue  # Consul keeps checks a re-registration does not mention, and maintenance always
                txn.delete("check", check_id)
                stopped.append(check_id)
            self._update_aliases(txn)
        for check_id in stopped:
            self._runner.remove(check_id)
            self._disarm_ttl(check_id)
            self._notify(check_id, "deregistered")
        for chk in started:
            self._run(chk)
        # IDs may hold CR/LF (Consul accepts them): log their repr so they cannot forge log lines.
        log.info("registered service %s", ", ".join(repr(i) for i in new_ids))
        return new_ids

    def deregister_service(self, service_id: str) -> None:
        """Remove a service, its checks and the sidecar registered with it. Unknown IDs are a no-op."""
        with self._lock, self.ctx.state.write() as txn:
            if txn.get("service", service_id) is None:
                return
            ids = {service_id} | {r.key for r in txn.records("service") if r.value.get("_SidecarOf") == service_id}
            removed_checks = [r.key for r in txn.records("check") if r.value.get("ServiceID") in ids]
            for sid in ids:
                txn.delete("service", sid)
            for check_id in removed_checks:
                txn.delete("check", check_id)
            self._update_aliases(txn)
        for check_id in removed_checks:
            self._runner.remove(check_id)
            self._disarm_ttl(check_id)
            self._notify(check_id, "deregistered")
        log.info("deregistered service %s", ", ".join(repr(i) for i in sorted(ids)))

    def register_check(self, raw: Any) -> str:
        """/v1/agent/check/register: add or replace a check on the agent (a service's when it names
        a ServiceID); a check whose definition did not change keeps its status. Returns its ID.
        Raises ServiceDefError with Consul's 400 text."""
        if not isinstance(raw, dict):
            raise ServiceDefError("the check definition must be a JSON object")
        chk = normalize_check(raw, "")
        service = None
        if chk.get("ServiceID"):
            service = self.service(chk["ServiceID"])
            if service is None:
                raise ServiceDefError(f'ServiceID "{chk["ServiceID"]}" does not exist')
        if chk.get("Status") and chk["Status"] not in _SEVERITY:
            raise ServiceDefError("Status for checks must 'passing', 'warning', 'critical'")
        doc = agent_check(chk, service, self.node_name)
        with self._lock, self.ctx.state.write() as txn:
            old = txn.get("check", doc["CheckID"])
            unchanged = old is not None and old.value.get("Definition") == doc["Definition"] \
                and old.value.get("ServiceID") == doc["ServiceID"]
            if unchanged:
                assert old is not None
                doc["Status"], doc["Output"] = old.value["Status"], old.value["Output"]
            doc["CreateIndex"] = old.create_index if old else txn.index
            doc["ModifyIndex"] = txn.index
            txn.put("check", doc["CheckID"], doc)
            self._update_aliases(txn)
        if not unchanged:
            self._runner.remove(doc["CheckID"])
            self._disarm_ttl(doc["CheckID"])
            self._run(doc)
        log.info("registered check %r", doc["CheckID"])
        return str(doc["CheckID"])

    def deregister_check(self, check_id: str) -> bool:
        """/v1/agent/check/deregister: False when there is no such check."""
        with self._lock, self.ctx.state.write() as txn:
            if not txn.delete("check", check_id):
                return False
            self._update_aliases(txn)
        self._runner.remove(check_id)
        self._disarm_ttl(check_id)
        self._notify(check_id, "deregistered")
        return True

    def set_service_maintenance(self, service_id: str, enable: bool, reason: str = "") -> None:
        """Put a service in maintenance (a critical `_service_maintenance:<id>` check) or take it out.
        Enabling twice keeps the first reason, as Consul does. Raises UnknownServiceError."""
        svc = self.service(service_id)
        if svc is None:
            raise UnknownServiceError(service_id)
        self._set_maintenance(SERVICE_MAINTENANCE_PREFIX + service_id, enable, {
            "Name": "Service Maintenance Mode", "Notes": reason or _DEFAULT_REASON.format("service"),
            "ServiceID": svc["ID"], "ServiceName": svc["Service"], "ServiceTags": list(svc.get("Tags") or []),
        })

    def set_node_maintenance(self, enable: bool, reason: str = "") -> None:
        """Put the node in maintenance (a critical `_node_maintenance` check: every service on it fails)."""
        self._set_maintenance(NODE_MAINTENANCE_ID, enable, {
            "Name": "Node Maintenance Mode", "Notes": reason or _DEFAULT_REASON.format("node"),
            "ServiceID": "", "ServiceName": "", "ServiceTags": [],
        })

    def _set_maintenance(self, check_id: str, enable: bool, fields: dict[str, Any]) -> None:
        with self._lock, self.ctx.state.write() as txn:
            exists = txn.get("check", check_id) is not None
            if enable and not exists:
                txn.put("check", check_id, dict(
                    fields, Node=self.node_name, CheckID=check_id, Status="critical", Output="", Type="maintenance",
                    Interval="", Timeout="", ExposedPort=0, Definition={}, CreateIndex=txn.index,
                    ModifyIndex=txn.index))
            elif not enable and exists:
                txn.delete("check", check_id)
            else:
                return
            self._update_aliases(txn)
        log.info("maintenance %s: %s", "on" if enable else "off", check_id)
        self._notify(check_id, "critical" if enable else "deregistered")

    def set_check_status(self, check_id: str, status: str, output: str) -> bool:
        """Set a check's status (TTL checks and tests); False if there is no such check."""
        return self._write_status(check_id, status, output)

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """/v1/agent/check/pass|warn|fail|update: set a TTL check and restart its TTL.
        Raises KeyError for an unknown check, NotTTLError for a check of another type."""
        rec = self.ctx.state.get("check", check_id)
        if rec is None:
            raise KeyError(check_id)
        if rec.value.get("Type") != "ttl":
            raise NotTTLError(f'CheckID "{check_id}" does not have associated TTL')
        self._write_status(check_id, status, output)
        self._arm_ttl(rec.value)

    # --- TTL expiry: a TTL check not updated within its TTL turns critical, as in Consul ----------

    def _arm_ttl(self, chk: dict[str, Any]) -> None:
        check_id = chk["CheckID"]
        try:
            ttl = parse_duration((chk.get("Definition") or {}).get("TTL") or "0s")
        except ValueError:
            return
        if ttl <= 0 or not self._started:
            return
        timer = threading.Timer(ttl, lambda: self._expire_ttl(check_id, timer))
        timer.daemon = True
        with self._ttl_lock:
            old = self._ttl_timers.pop(check_id, None)
            self._ttl_timers[check_id] = timer
        if old is not None:
            old.cancel()
        timer.start()

    def _disarm_ttl(self, check_id: str) -> None:
        with self._ttl_lock:
            timer = self._ttl_timers.pop(check_id, None)
        if timer is not None:
            timer.cancel()

    def _expire_ttl(self, check_id: str, timer: threading.Timer) -> None:
        with self._ttl_lock:
            if self._ttl_timers.get(check_id) is not timer:
                return  # updated or removed while this timer fired
            del self._ttl_timers[check_id]
        rec = self.ctx.state.get("check", check_id)
        if rec is None:
            return
        last = rec.value.get("Output") or ""
        output = f"TTL expired (last output before timeout follows): {last}" if last else "TTL expired"
        self._on_status(check_id, "critical", output)

    # --- reads --------------------------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        return [public(v) for v in self.ctx.state.values("service")]

    def service(self, service_id: str) -> dict[str, Any] | None:
        rec = self.ctx.state.get("service", service_id)
        return public(rec.value) if rec else None

    def checks(self) -> list[dict[str, Any]]:
        return self.ctx.state.values("check")

    def health(self, name: str, passing_only: bool = False, connect: bool = False) -> list[dict[str, Any]]:
        """Consul's /v1/health/service (or /connect with `connect`): [{Node, Service, Checks}]."""
        out = []
        node_checks_of: dict[str, list[dict[str, Any]]] = {}
        with self.ctx.state.reading():  # a service and its checks from one view (else it may look passing)
            for node, svc in self._instances(name, connect):
                # A service's health: the node's checks (serfHealth, node maintenance) and its own.
                if node["Node"] not in node_checks_of:  # read once per node, not once per instance
                    node_checks_of[node["Node"]] = self.node_checks(node["Node"])
                node_checks = node_checks_of[node["Node"]]
                svc_checks = [c for c in node_checks if c.get("ServiceID") in ("", svc["ID"])]
                if passing_only and any(c["Status"] != "passing" for c in svc_checks):
                    continue
                out.append({"Node": node, "Service": svc, "Checks": svc_checks})
        return out

    def ingress(self, name: str, passing_only: bool = False) -> list[dict[str, Any]]:
        """Consul's /v1/health/ingress: the ingress gateways whose config entry routes to `name`
        (a listener's service of that name, or `*`), as health rows."""
        out = []
        for row in self.health_of_kind("ingress-gateway", passing_only):
            rec = self.ctx.state.get("config", f"ingress-gateway/{row['Service']['Service']}")
            listeners = (rec.value.get("Listeners") or []) if rec else []
            if any(s.get("Name") in (name, "*") for lst in listeners for s in lst.get("Services") or []):
                out.append(row)
        return out

    def health_of_kind(self, kind: str, passing_only: bool) -> list[dict[str, Any]]:
        node = self.node()
        checks = self.node_checks(self.node_name)
        out = []
        for svc in self.services():
            if svc.get("Kind") != kind:
                continue
            svc_checks = [c for c in checks if c.get("ServiceID") in ("", svc["ID"])]
            if passing_only and any(c["Status"] != "passing" for c in svc_checks):
                continue
            out.append({"Node": node, "Service": svc, "Checks": svc_checks})
        return out

    def _instances(self, name: str, connect: bool) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(node, service) of every instance of `name`: the agent's, then the catalog-registered ones."""
        own = self.node()
        out = [(own, svc) for svc in self._matching(name, connect, self._catalog_services())]
        ext_nodes = {n["Node"]: n for n in self.external.nodes()}
        for svc in self._matching(name, connect, self.external.services()):
            node = ext_nodes.get(svc["_Node"])
            if node is not None:
                out.append((node, public(svc)))
        return out

    def _matching(self, name: str, connect: bool,
                  services: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        services = self.services() if services is None else services
        if not connect:
            return [s for s in services if s["Service"] == name]
        # Connect-capable instances: proxies for `name`, and `name` itself when Connect-native.
        return [s for s in services
                if (s.get("Kind") == "connect-proxy" and (s.get("Proxy") or {}).get("DestinationServiceName") == name)
                or (s["Service"] == name and (s.get("Connect") or {}).get("Native"))]

    def catalog_service(self, name: str, connect: bool = False) -> list[dict[str, Any]]:
        """Consul's /v1/catalog/service (or /catalog/connect) rows: node fields + Service* fields."""
        return self._catalog_rows(self._instances(name, connect))

    def catalog_rows(self) -> list[dict[str, Any]]:
        """catalog_service's rows of every service, read once (the agent's, then catalog-registered
        ones): /v1/catalog/services would otherwise read the whole catalog once per name."""
        own = self.node()
        pairs = [(own, svc) for svc in self._catalog_services()]
        ext_nodes = {n["Node"]: n for n in self.external.nodes()}
        pairs += [(ext_nodes[svc["_Node"]], public(svc)) for svc in self.external.services()
                  if svc["_Node"] in ext_nodes]
        return self._catalog_rows(pairs)

    @staticmethod
    def _catalog_rows(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
        rows = []
        for node, s in pairs:
            rows.append({
                "ID": node["ID"], "Node": node["Node"], "Address": node["Address"],
                "Datacenter": node["Datacenter"], "TaggedAddresses": node["TaggedAddresses"],
                "NodeMeta": node["Meta"], "ServiceKind": s.get("Kind", ""), "ServiceID": s["ID"],
                "ServiceName": s["Service"], "ServiceTags": s["Tags"], "ServiceAddress": s.get("Address", ""),
                "ServiceTaggedAddresses": s.get("TaggedAddresses"), "ServiceWeights": s["Weights"],
                "ServiceMeta": s["Meta"], "ServicePort": s["Port"],
                "ServiceEnableTagOverride": s["EnableTagOverride"],
                "ServiceProxy": s.get("Proxy") or {"MeshGateway": {}, "Expose": {}},
                "ServiceConnect": s.get("Connect") or {},
                "CreateIndex": s.get("CreateIndex", 0), "ModifyIndex": s.get("ModifyIndex", 0),
            })
        return rows

    # --- checks -------------------------------------------------------------------------------

    def _run(self, chk: dict[str, Any]) -> None:
        if chk.get("Type") == "ttl":
            self._arm_ttl(chk)
            return
        if not self._started or chk.get("Type") not in ("http", "tcp"):
            return
        d = chk.get("Definition") or {}
        try:
            spec = CheckSpec(
                check_id=chk["CheckID"], type=chk["Type"],
                interval_s=parse_duration(d.get("Interval") or "10s"),
                timeout_s=parse_duration(d["Timeout"]) if d.get("Timeout") else 10.0,  # Consul: 10s
                http=d.get("HTTP", ""), tcp=d.get("TCP", ""), method=d.get("Method") or "GET",
                headers={k: (v[0] if isinstance(v, list) and v else str(v))
                         for k, v in (d.get("Header") or {}).items()},
                tls_skip_verify=bool(d.get("TLSSkipVerify")),
            )
        except ValueError as e:
            self._write_status(chk["CheckID"], "critical", str(e))
            return
        self._runner.add(spec)

    def _on_status(self, check_id: str, status: str, output: str) -> None:
        try:
            self._write_status(check_id, status, output)
        except Exception:  # the state may be closing under a last check result
            log.debug("check %s: status not written", check_id, exc_info=True)

    def _write_status(self, check_id: str, status: str, output: str) -> bool:
        with self.ctx.state.write(critical=True) as txn:  # a check result is recorded even on a full disk
            rec = txn.get("check", check_id)
            if rec is None:
                return False
            if rec.value["Status"] == status and rec.value["Output"] == output:
                return True
            if rec.value["Status"] != status:
                log.info("check %s (%s): %s", check_id, rec.value.get("ServiceID") or "node", status)
            changed = rec.value["Status"] != status
            txn.put("check", check_id, dict(rec.value, Status=status, Output=output, ModifyIndex=txn.index))
            self._update_aliases(txn)
        if changed:
            self._notify(check_id, status)
        return True

    def _notify(self, check_id: str, status: str) -> None:
        for listener in self._status_listeners:
            listener(check_id, status)

    def _update_aliases(self, txn: Txn) -> None:
        """Recompute every alias check from the checks of the service it aliases."""
        checks = [r.value for r in txn.records("check")]
        for chk in checks:
            target = (chk.get("Definition") or {}).get("AliasService")
            if chk.get("Type") != "alias" or not target:
                continue
            found = txn.get("service", target) is not None
            status, output = _alias_result(
                [c for c in checks if c.get("ServiceID") == target and c.get("Type") != "alias"], found)
            if (chk["Status"], chk["Output"]) != (status, output):
                txn.put("check", chk["CheckID"], dict(chk, Status=status, Output=output, ModifyIndex=txn.index))

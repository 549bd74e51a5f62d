"""Consul's flat intention endpoints, stored as service-intentions config entries (Consul 1.9+).

    GET    /v1/connect/intentions                 every source of every entry, by precedence
    POST   /v1/connect/intentions                 legacy create → {"ID"}; the source gets a LegacyID
    GET    /v1/connect/intentions/<id>            legacy read by ID;  DELETE: legacy delete
    GET    /v1/connect/intentions/exact           one (source, destination);  PUT: upsert;  DELETE
    GET    /v1/connect/intentions/check           {"Allowed"}: precedence, then the default policy
    GET    /v1/connect/intentions/match           {name: [intentions by precedence]}

As in Consul, the legacy create is refused (500, Consul's text) for a destination whose entry was
already written as a config entry or through /exact (some source without a LegacyID): mixing both
would let the legacy API silently rewrite an entry managed elsewhere.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from quart import Blueprint, Response, request

from nomadmesh.agent.consul.config_entries import EntryError, decode
from nomadmesh.agent.consul.config_store import KIND, delete_entry, key, write_entry
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response
from nomadmesh.agent.state import Record, Txn
from nomadmesh.mesh import intentions as ixn

bp = Blueprint("consul_intentions", __name__)

_EXACT_FIELDS = {"SourceType", "Action", "Description", "Permissions", "SourceNS", "SourceName",
                 "DestinationNS", "DestinationName", "SourcePartition", "DestinationPartition", "SourcePeer",
                 "ID", "Precedence", "CreateIndex", "ModifyIndex"}


def flat(entry: dict[str, Any], src: dict[str, Any], rec: Record) -> dict[str, Any]:
    """One source of an entry as Consul's flat Intention JSON."""
    out: dict[str, Any] = {
        "ID": src.get("LegacyID", ""),
        "Description": src.get("Description", ""),
        "SourceNS": "default", "SourceName": src["Name"], "SourcePartition": "default",
        "DestinationNS": "default", "DestinationName": entry["Name"], "DestinationPartition": "default",
        "SourceType": src.get("Type") or "consul",
        "Meta": src.get("LegacyMeta") or {},
        "Precedence": ixn.precedence(src["Name"], entry["Name"]),
        "CreateIndex": rec.create_index, "ModifyIndex": rec.modify_index,
    }
    if src.get("Permissions"):
        out["Permissions"] = src["Permissions"]
    else:
        out["Action"] = src.get("Action")
    return out


def _all(records: list[Record]) -> list[dict[str, Any]]:
    rows = [flat(r.value, s, r) for r in records for s in r.value.get("Sources") or []]
    return sorted(rows, key=lambda i: (-i["Precedence"], i["SourceName"], i["DestinationName"]))


def _records() -> list[Record]:
    return current_ctx().state.records(KIND, f"{ixn.KIND}/")


def _required(name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise HTTPError(400, f"required query parameter '{name}' not set")
    return value


def _write(txn: Txn, entry: dict[str, Any]) -> None:
    """Validate (as a config entry would be) and store, inside `txn`."""
    try:
        write_entry(txn, decode(entry), cas=None)
    except EntryError as e:
        raise HTTPError(e.status, str(e)) from None


@bp.get("/v1/connect/intentions")
async def list_all() -> Response:
    index = await block(current_ctx().state, (KIND,))
    return json_response(_all(_records()), index=index)


def _name_field(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise HTTPError(400, f"Invalid Intention: {field} must be set")
    return value


@bp.post("/v1/connect/intentions")
def legacy_create() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: an intention must be a JSON object")
    src_name, dst_name = _name_field(body, "SourceName"), _name_field(body, "DestinationName")
    if body.get("Permissions"):
        raise HTTPError(400, "Invalid Intention: Permissions cannot be set with the legacy API")
    legacy_id = str(uuid.uuid4())
    source = {"Name": src_name, "Action": body.get("Action"), "Type": body.get("SourceType") or "consul",
              "Description": body.get("Description") or "", "LegacyID": legacy_id,
              "LegacyMeta": body.get("Meta") or {}}
    with current_ctx().state.write() as txn:
        rec = txn.get(KIND, key(ixn.KIND, dst_name))
        if rec is not None:
            sources = rec.value.get("Sources") or []
            if not all(s.get("LegacyID") for s in sources):
                raise HTTPError(500, f"cannot use legacy intention API to edit intentions with a destination of "
                                     f"\"{dst_name}\" after editing them via a service-intentions config entry")
            if any(s["Name"] == src_name for s in sources):
                raise HTTPError(500, f"duplicate intention found: {src_name} => {dst_name}")
        _write(txn, ixn.upsert_source(rec.value if rec else None, dst_name, source))
    return json_response({"ID": legacy_id})


def _exact_args() -> tuple[str, str]:
    return _required("source"), _required("destination")


@bp.get("/v1/connect/intentions/exact")
async def exact_get() -> Response:
    source, destination = _exact_args()
    state = current_ctx().state
    index = await block(state, (KIND,))
    rec = state.get(KIND, key(ixn.KIND, destination))
    src = next((s for s in (rec.value.get("Sources") or []) if s["Name"] == source), None) if rec else None
    if rec is None or src is None:
        resp = json_response(None, index=index)
        resp.status_code, resp.mimetype = 404, "text/plain"
        resp.set_data("Intention not found\n")
        return resp
    return json_response(flat(rec.value, src, rec), index=index)


@bp.put("/v1/connect/intentions/exact")
def exact_put() -> Response:
    source, destination = _exact_args()
    body = json_body()
    if not isinstance(body, dict):
        raise HTTPError(400, "Request decode failed: an intention must be a JSON object")
    if body.get("Meta"):
        raise HTTPError(400, "Meta must not be set when using the exact intention endpoint; "
                             "use a service-intentions config entry")
    unknown = sorted(set(body) - _EXACT_FIELDS - {"Meta"})
    if unknown:
        raise HTTPError(400, f"Request decode failed: unknown field {unknown[0]!r}")
    src: dict[str, Any] = {"Name": source, "Type": body.get("SourceType") or "consul"}
    if body.get("Permissions"):
        src["Permissions"] = body["Permissions"]
    else:
        src["Action"] = body.get("Action")
    if body.get("Description"):
        src["Description"] = body["Description"]
    with current_ctx().state.write() as txn:
        rec = txn.get(KIND, key(ixn.KIND, destination))
        entry = ixn.upsert_source(rec.value if rec else None, destination, src)
        _write(txn, entry)
    return json_response(True)


@bp.delete("/v1/connect/intentions/exact")
def exact_delete() -> Response:
    source, destination = _exact_args()
    with current_ctx().state.write() as txn:
        _remove_source(txn, destination, lambda s: s["Name"] == source)
    return json_response(True)


def _remove_source(txn: Txn, destination: str, which: Callable[[dict[str, Any]], bool]) -> bool:
    rec = txn.get(KIND, key(ixn.KIND, destination))
    if rec is None or not any(which(s) for s in rec.value.get("Sources") or []):
        return False
    remaining = [s for s in rec.value["Sources"] if not which(s)]
    if remaining:
        _write(txn, {**rec.value, "Sources": remaining})
    else:
        delete_entry(txn, ixn.KIND, destination, cas=None)
    return True


def evaluate(source: str, destination: str) -> ixn.Decision:
    ctx = current_ctx()
    parsed = [i for r in _records() for i in ixn.from_config_entry(r.value)]
    return ixn.evaluate(source, destination, parsed, ctx.config.default_allow)


@bp.get("/v1/connect/intentions/check")
def check() -> Response:
    source, destination = _required("source"), _required("destination")
    source_type = request.args.get("source-type", "consul")
    if source_type != "consul":
        raise HTTPError(400, f"unsupported source-type: {source_type!r}")
    return json_response({"Allowed": evaluate(source, destination).allowed})


@bp.get("/v1/connect/intentions/match")
async def match() -> Response:
    by = request.args.get("by", "")
    if by not in ("source", "destination"):
        raise HTTPError(400, "'by' must be set to 'source' or 'destination'")
    names = request.args.getlist("name")
    if not names:
        raise HTTPError(400, "required query parameter 'name' not set")
    index = await block(current_ctx().state, (KIND,))
    rows = _all(_records())
    field = "SourceName" if by == "source" else "DestinationName"
    out = {}
    for name in names:
        picked = [r for r in rows if r[field] in (ixn.WILDCARD, name)]
        out[name] = sorted(picked, key=lambda i: -i["Precedence"])  # stable: keeps name order within ties
    return json_response(out, index=index)


@bp.get("/v1/connect/intentions/<intention_id>")
def legacy_get(intention_id: str) -> Response:
    for row in _all(_records()):
        if row["ID"] == intention_id:
            return json_response(row)
    raise HTTPError(404, "Intention not found")


@bp.delete("/v1/connect/intentions/<intention_id>")
def legacy_delete(intention_id: str) -> Response:
    with current_ctx().state.write() as txn:
        for rec in txn.records(KIND, f"{ixn.KIND}/"):
            if any(s.get("LegacyID") == intention_id for s in rec.value.get("Sources") or []):
                _remove_source(txn, rec.value["Name"], lambda s: s.get("LegacyID") == intention_id)
                return json_response(True)
    raise HTTPError(404, "Intention not found")

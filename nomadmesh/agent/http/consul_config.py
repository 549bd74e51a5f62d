"""Consul's config entry endpoints: PUT /v1/config (cas), GET /v1/config/<kind>[/<name>], DELETE.

Writes run in one State transaction: the CAS check, the L7-protocol check against the other
entries and the write see the same state, so concurrent writers cannot interleave.
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response, query_int
from nomadmesh.agent.consul import ingress_gateway as ingress
from nomadmesh.agent.consul.config_entries import KINDS, EntryError, decode, protocol_conflict, protocol_of, to_json
from nomadmesh.agent.state import Txn
from nomadmesh.mesh import intentions as ixn

bp = Blueprint("consul_config", __name__)

KIND = "config"  # State kind; keys are "<Kind>/<Name>"


def key(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise HTTPError(400, f"invalid config entry kind: {kind}")
    return kind


def lookup_in(txn: Txn) -> Any:
    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        rec = txn.get(KIND, key(kind, name))
        return rec.value if rec else None
    return lookup


def write_entry(txn: Txn, entry: dict[str, Any], cas: int | None) -> bool:
    """Store `entry` inside `txn`; False on a CAS mismatch; EntryError if the graph is refused."""
    k = key(entry["Kind"], entry["Name"])
    current = txn.get(KIND, k)
    if cas is not None and (current.modify_index if current else 0) != cas:
        return False
    intentions = [r.value for r in txn.records(KIND, f"{ixn.KIND}/") if r.key != k]
    if entry["Kind"] == ixn.KIND:
        intentions.append(entry)

    def lookup(kind: str, name: str) -> dict[str, Any] | None:
        if (kind, name) == (entry["Kind"], entry["Name"]):
            return entry
        return lookup_in(txn)(kind, name)

    if entry["Kind"] in (ixn.KIND, "service-defaults", "proxy-defaults"):
        problem = protocol_conflict(entry, lookup, intentions)
        if problem:
            raise EntryError(problem)
    if entry["Kind"] in (ingress.KIND, "service-defaults", "proxy-defaults", "service-router", "service-splitter"):
        _check_ingress_protocols(txn, lookup, entry)
    txn.put(KIND, k, entry)
    return True


def _check_ingress_protocols(txn: Txn, lookup: Any, written: dict[str, Any] | None,
                             deleted: tuple[str, str] | None = None) -> None:
    """Consul refuses a graph where an ingress listener's protocol differs from its services'."""
    gone = {(written["Kind"], written["Name"])} if written else {deleted}
    entries = [r.value for r in txn.records(KIND, f"{ingress.KIND}/") if (ingress.KIND, r.value["Name"]) not in gone]
    if written and written["Kind"] == ingress.KIND:
        entries.append(written)
    problem = ingress.protocol_conflict(
        entries, lambda name: protocol_of(name, lookup),
        lambda name: any(lookup(kind, name) for kind in ("service-router", "service-splitter")))
    if problem:
        raise EntryError(problem)


def delete_entry(txn: Txn, kind: str, name: str, cas: int | None) -> bool:
    k = key(kind, name)
    current = txn.get(KIND, k)
    if cas is not None and (current is None or current.modify_index != cas):
        return False
    if current is None:
        return True
    if kind in ("service-defaults", "proxy-defaults"):
        intentions = [r.value for r in txn.records(KIND, f"{ixn.KIND}/")]

        def lookup(k2: str, n2: str) -> dict[str, Any] | None:
            return None if (k2, n2) == (kind, name) else lookup_in(txn)(k2, n2)

        problem = protocol_conflict(None, lookup, intentions)
        if problem:
            raise EntryError(problem)
        _check_ingress_protocols(txn, lookup, None, (kind, name))
    txn.delete(KIND, k)
    return True


@bp.put("/v1/config")
def put() -> Response:
    try:
        entry = decode(json_body())
    except EntryError as e:
        raise HTTPError(e.status, str(e)) from None
    cas = query_int("cas")
    try:
        with current_ctx().state.write() as txn:
            ok = write_entry(txn, entry, cas)
    except EntryError as e:
        raise HTTPError(e.status, str(e)) from None
    return json_response(ok)


@bp.get("/v1/config/<kind>")
async def list_kind(kind: str) -> Response:
    _check_kind(kind)
    state = current_ctx().state
    index = await block(state, (KIND,))
    records = state.records(KIND, f"{kind}/")
    return json_response([to_json(r.value, r.create_index, r.modify_index) for r in records], index=index)


@bp.get("/v1/config/<kind>/<path:name>")
async def get(kind: str, name: str) -> Response:
    _check_kind(kind)
    state = current_ctx().state
    index = await block(state, (KIND,))
    rec = state.get(KIND, key(kind, name))
    if rec is None:
        resp = json_response(None, index=index)
        resp.status_code = 404
        resp.set_data(f'Config entry not found for "{kind}" / "{name}"\n')
        resp.mimetype = "text/plain"
        return resp
    return json_response(to_json(rec.value, rec.create_index, rec.modify_index), index=index)


@bp.delete("/v1/config/<kind>/<path:name>")
def delete(kind: str, name: str) -> Response:
    _check_kind(kind)
    cas = query_int("cas")
    try:
        with current_ctx().state.write() as txn:
            ok = delete_entry(txn, kind, name, cas)
    except EntryError as e:
        raise HTTPError(e.status, str(e)) from None
    return json_response(ok if cas is not None else {})

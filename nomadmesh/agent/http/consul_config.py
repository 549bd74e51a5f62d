"""Consul's config entry endpoints: PUT /v1/config (cas), GET /v1/config/<kind>[/<name>], DELETE.

Writes run in one State transaction through consul/config_store.py (CAS, Consul's protocol checks);
a discovery-chain entry naming what the agent's data plane cannot serve is refused first
(consul/chain_support.py).
"""
from __future__ import annotations

from quart import Blueprint, Response

from nomadmesh.agent.consul import chain_support
from nomadmesh.agent.consul.config_entries import KINDS, EntryError, decode, to_json
from nomadmesh.agent.consul.config_store import KIND, delete_entry, key, write_entry
from nomadmesh.agent.http.common import HTTPError, block, current_ctx, json_body, json_response, query_int

bp = Blueprint("consul_config", __name__)

def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise HTTPError(400, f"invalid config entry kind: {kind}")
    return kind


@bp.put("/v1/config")
def put() -> Response:
    try:
        entry = decode(json_body())
    except EntryError as e:
        raise HTTPError(e.status, str(e)) from None
    unserved = chain_support.problem(entry, current_ctx().config.datacenter)
    if unserved:
        raise HTTPError(400, unserved)
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

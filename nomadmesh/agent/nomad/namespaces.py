"""Nomad namespaces: the `default` namespace always exists; others are documents of kind `namespace`.

Upsert and delete follow Nomad's Namespace RPCs (nomad/namespace_endpoint.go): a name must match
^[a-zA-Z0-9-]{1,128}$, `default` cannot be deleted, and a namespace that still holds live jobs,
allocations or variables is refused with Nomad's texts (one multierror, region `global`).
What namespaces configure beyond a description and meta (capabilities, node pools, Vault and
Consul configuration, quotas) the dev agent cannot enforce, so it refuses them.
"""
from __future__ import annotations

import re
from typing import Any

from nomadmesh.agent.state import State, Txn

KIND = "namespace"
DEFAULT = "default"
DEFAULT_DESCRIPTION = "Default shared namespace"
REGION = "global"
VALID_NAME = re.compile(r"^[a-zA-Z0-9-]{1,128}$")
MAX_DESCRIPTION = 256
UNENFORCED = ("Quota", "Capabilities", "NodePoolConfiguration", "VaultConfiguration", "ConsulConfiguration",
              "RequiredExtraClaims", "OptionalExtraClaims")
TERMINAL_ALLOC = ("complete", "failed", "lost")
VARIABLE_KIND = "variable"  # the kind nomad/variables.py stores under; keys start "<namespace>/"


class NamespaceError(Exception):
    """Refused as Nomad refuses it; `status` is the HTTP status Nomad answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's text, which Nomad's namespace RPCs return."""
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} error{'s' if len(errors) != 1 else ''} occurred:\n\t{points}\n\n"


def _default() -> dict[str, Any]:
    return document({"Name": DEFAULT, "Description": DEFAULT_DESCRIPTION}, 1, 1)


def document(body: dict[str, Any], create_index: int, modify_index: int) -> dict[str, Any]:
    """api.Namespace as Nomad returns it."""
    return {"Name": body["Name"], "Description": body.get("Description") or "", "Quota": "",
            "Capabilities": None, "NodePoolConfiguration": None, "VaultConfiguration": None,
            "ConsulConfiguration": None, "Meta": body.get("Meta") or None,
            "CreateIndex": create_index, "ModifyIndex": modify_index}


def get(state: State | Txn, name: str) -> dict[str, Any] | None:
    """The namespace; `default` as updated, else as Nomad creates it."""
    rec = state.get(KIND, name)
    if rec is None:
        return _default() if name == DEFAULT else None
    return rec.value


def exists(state: State | Txn, name: str) -> bool:
    return name == DEFAULT or state.get(KIND, name) is not None


def listing(state: State, prefix: str = "") -> list[dict[str, Any]]:
    stored = {r.key: r.value for r in state.records(KIND)}
    stored.setdefault(DEFAULT, _default())
    return sorted((n for n in stored.values() if n["Name"].startswith(prefix)), key=lambda n: n["Name"])


def _validate(body: dict[str, Any]) -> None:
    name = body.get("Name")
    errors = []
    if not isinstance(name, str) or not VALID_NAME.match(name):
        errors.append(f"invalid name {name!r}. Must match regex {VALID_NAME.pattern}".replace("'", '"'))
    description = body.get("Description") or ""
    if not isinstance(description, str):
        raise NamespaceError(400, "Request decode failed: Description must be a string")
    if len(description) > MAX_DESCRIPTION:
        errors.append(f"description longer than {MAX_DESCRIPTION}")
    meta = body.get("Meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise NamespaceError(400, "Request decode failed: Meta must map names to strings")
    if errors:
        raise NamespaceError(500, f"Invalid namespace {_quote(name)}: {multierror(errors)}")
    for field in UNENFORCED:
        if body.get(field):
            raise NamespaceError(400, f"namespace {field} is not supported by the dev agent (it cannot enforce it)")


def _quote(value: Any) -> str:
    return '"' + str(value if isinstance(value, str) else "").replace('"', '\\"') + '"'  # Go's %q


def upsert(state: State, body: dict[str, Any]) -> int:
    """Create or replace a namespace; returns the write's index."""
    _validate(body)
    with state.write() as txn:
        current = txn.get(KIND, body["Name"])
        create = current.create_index if current else (1 if body["Name"] == DEFAULT else txn.index)
        txn.put(KIND, body["Name"], document(body, create, txn.index))
        return txn.index


def delete(state: State, name: str) -> int:
    """Delete a namespace with Nomad's checks; returns the write's index."""
    if name == DEFAULT:
        raise NamespaceError(500, "can not delete default namespace")
    with state.write() as txn:
        if txn.get(KIND, name) is None:
            raise NamespaceError(500, "namespace not found")
        errors = []
        if any(j.value.get("Namespace") == name and j.value.get("Status") != "dead" for j in txn.records("job")):
            errors.append(f"namespace {_quote(name)} has non-terminal jobs in regions: [{REGION}]")
        if any(a.value.get("Namespace") == name and a.value.get("ClientStatus") not in TERMINAL_ALLOC
               for a in txn.records("alloc")):
            errors.append(f"namespace {_quote(name)} has non-terminal allocations in regions: [{REGION}]")
        if txn.records(VARIABLE_KIND, name + "/"):
            errors.append(f"namespace {_quote(name)} has variables associated with it in regions: [{REGION}]")
        if errors:
            raise NamespaceError(500, multierror(errors))
        txn.delete(KIND, name)
        return txn.index

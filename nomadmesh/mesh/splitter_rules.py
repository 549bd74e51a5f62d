"""Consul's validation of a `service-splitter` config entry, with Consul's error texts. Pure.

`normalize(entry)` checks an entry whose keys have Consul's Go spelling (`Splits`, `Weight`,
`ServiceSubset`) as `ServiceSplitterConfigEntry.Normalize` + `Validate` do and returns it as Consul
stores it. Weights are float32 in Consul, kept to 0.01% steps: each weight is rounded to two
decimals, and the rounded weights must add up to exactly 100. Type errors raise `Undecodable`
(400), broken rules `InvalidSplitter` (500).
"""
from __future__ import annotations

import struct
from typing import Any

from nomadmesh.mesh import entry_types as t
from nomadmesh.mesh.intention_rules import go_quote

KIND = "service-splitter"
SCALE = 100  # weights are kept in units of 0.01


class InvalidSplitter(ValueError):
    """The entry breaks one of Consul's Validate rules; the message is Consul's text."""


def _float32(value: float) -> float:
    """`value` as Go's float32 holds it (Consul's Weight type)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def scaled(weight: float) -> int:
    """Consul's scaleWeight: the weight in 0.01 units, rounded half away from zero as Go's math.Round."""
    x = _float32(_float32(weight) * 100.0)
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def normal_weight(weight: float) -> float | int:
    """The weight Consul stores (NormalizeServiceSplitWeight), as Go prints a float32: 90, 33.33."""
    units = scaled(weight)
    return units // SCALE if units % SCALE == 0 else round(units / SCALE, 2)


def sum_problem(weights: list[float]) -> str | None:
    """Consul's text when the weights (already normalized or not) do not add up to 100."""
    total = sum(scaled(w) for w in weights)
    if total == 100 * SCALE:
        return None
    return f"the sum of all split weights must be 100, not {total / SCALE:f}"


def normalize(entry: dict[str, Any]) -> dict[str, Any]:
    splits = t.items(entry, "Splits", "")
    out_splits = []
    for i, raw in enumerate(splits):
        split = dict(t.obj(raw, f"Splits[{i}]"))
        where = f"Splits[{i}]."
        for key in ("Service", "ServiceSubset", "Namespace", "Partition"):
            t.string(split, key, where)
        split["Weight"] = normal_weight(t.number(split, "Weight", where))
        out_splits.append(split)
    if not out_splits:
        raise InvalidSplitter("no splits configured")
    seen: set[tuple[str, str, str, str]] = set()
    for split in out_splits:
        dest = (split.get("Service") or entry["Name"], split.get("ServiceSubset") or "",
                split.get("Namespace") or "", split.get("Partition") or "")
        if dest in seen:
            raise InvalidSplitter(f"split destination occurs more than once: service={go_quote(dest[0])}, "
                                  f"subset={go_quote(dest[1])}, namespace={go_quote(dest[2])}, "
                                  f"partition={go_quote(dest[3])}")
        seen.add(dest)
    problem = sum_problem([s["Weight"] for s in out_splits])
    if problem:
        raise InvalidSplitter(problem)
    return {**entry, "Splits": out_splits}

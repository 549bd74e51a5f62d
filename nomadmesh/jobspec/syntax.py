"""The small syntax tree an HCL2 text is read into: bodies of attributes and blocks.

Both readers build it: `hcl.parse` (Lark, any HCL) and `hcl_simple.simple_body` (the plain subset,
faster). Attribute values stay unevaluated Lark expression trees (see `hcl.Evaluator`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Attr:
    name: str
    expr: Any  # a Lark Tree (unevaluated)
    line: int
    column: int


@dataclass
class Block:
    type: str
    labels: list[str]
    body: Body
    line: int
    column: int


@dataclass
class Body:
    attrs: dict[str, Attr] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

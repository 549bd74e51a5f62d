"""Rendering a Nomad `template` block on this machine: paths, the render itself, the file, the
dotenv of `env = true`. The render is pure (template_syntax nodes + lookups → text); the file
writes sit at the edge.

Paths follow Nomad's TaskEnv.ClientPath: a relative path is inside the task dir; an absolute
destination outside the allocation dir is joined to the task dir too; anything that still lands
outside the allocation dir is refused with Nomad's client error ("template source path escapes
alloc directory" / "template destination path escapes alloc directory"), as Nomad's default file
sandbox does.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nomadmesh.agent.runtime.template_syntax import Block, Field, Node, Text

SOURCE_ESCAPES = "template source path escapes alloc directory"
DEST_ESCAPES = "template destination path escapes alloc directory"


class TemplateError(Exception):
    """Rendering failed; Nomad kills the task with "Template failed: <message>"."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def client_path(raw: str, task_dir: str, alloc_dir: str, join_escape: bool) -> tuple[str, bool]:
    """Nomad's ClientPath: (the host path, whether it escapes the allocation dir)."""
    alloc_dir = os.path.normpath(alloc_dir)
    path = raw
    if not os.path.isabs(path) or (join_escape and not _inside(os.path.normpath(path), alloc_dir)):
        path = os.path.join(task_dir, path.lstrip("/") if os.path.isabs(path) else path)
    path = os.path.normpath(path)
    return path, not _inside(path, alloc_dir)


@dataclass(frozen=True)
class Rendered:
    text: str
    missing: tuple[str, ...]  # consul-template dependencies still missing, e.g. "kv.block(db/pass)"


ServiceLookup = Callable[[str], list[dict[str, Any]]]


def _nothing(_arg: str) -> list[dict[str, Any]]:
    return []


@dataclass(frozen=True)
class Sources:
    """What a template reads (consul-template's dependencies), looked up by the caller."""
    key: Callable[[str], str | None]  # a KV value as text; None while the key is missing
    service: ServiceLookup = _nothing  # passing instances of "name" / "tag.name" (HealthService fields)
    connect: ServiceLookup = _nothing  # the same, Connect-capable (the sidecars)
    kv_list: Callable[[str], list[dict[str, Any]]] = _nothing  # KeyPairs of the keys starting with a prefix
    variable: Callable[[str], dict[str, str] | None] = lambda _path: None  # a Nomad variable's items; None: missing
    namespace: str = "default"  # the task's: where nomadVar looks


def _top_level(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """consul-template's `ls`: only the non-empty keys with no further '/' below the prefix."""
    return [p for p in pairs if p["Key"] and "/" not in p["Key"]]


def render(nodes: list[Node], src: Sources, env: Mapping[str, str]) -> Rendered:
    """The template's text from what it reads (`src`) and the task's `env`. Missing dependencies
    (a key, a variable) are listed in consul-template's words."""
    out: list[str] = []
    missing: list[str] = []

    def run(block: Block) -> Sequence[Mapping[str, Any]]:
        """What the block's body runs with, once per element (none: the body is skipped)."""
        if block.func in ("service", "connect"):
            return (src.service if block.func == "service" else src.connect)(block.arg)
        if block.func == "ls":
            return _top_level(src.kv_list(block.arg.lstrip("/")))
        path = block.arg.strip().strip("/")
        items = src.variable(path)
        if items is None:  # nomadVar blocks until the variable exists
            missing.append(f"nomad.var.block({path}@{src.namespace}.global)")
            return []
        if block.action == "with":
            return [items] if items else []  # Go's `with` skips an empty map
        return [{"Key": k, "Value": items[k]} for k in sorted(items)]

    def emit(node: Node, dot: Mapping[str, Any] | None) -> None:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Field):
            value = (dot or {}).get(node.name, "")
            # Go's fmt of a []string is "[a b]"
            out.append("[" + " ".join(value) + "]" if isinstance(value, list) else str(value))
        elif isinstance(node, Block):
            for element in run(node):
                for inner in node.body:
                    emit(inner, element)
        elif node.func == "":
            out.append(node.args[0])
        elif node.func == "env":
            out.append(env.get(node.args[0], ""))
        elif node.func == "key":
            value = src.key(node.args[0])
            if value is None:
                missing.append(f"kv.block({node.args[0]})")
            else:
                out.append(value)
        elif node.func == "keyOrDefault":
            value = src.key(node.args[0])
            out.append(node.args[1] if value is None else value)
        else:  # template_syntax refuses every other function when the job is registered
            raise TemplateError(f'function "{node.func}" not supported by the dev agent')

    for node in nodes:
        emit(node, None)
    return Rendered("".join(out), tuple(dict.fromkeys(missing)))


def health_instances(entries: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    """consul-template's HealthService list from Consul health entries ([{Node, Service, Checks}])
    for `name` or `tag.name`: passing instances only, sorted by node then ID."""
    tag = wanted.split(".", 1)[0] if "." in wanted else None
    out = []
    for e in entries:
        node, svc = e["Node"], e["Service"]
        if tag is not None and tag not in (svc.get("Tags") or []):
            continue
        out.append({"Node": node.get("Node", ""), "NodeID": node.get("ID", ""),
                    "NodeAddress": node.get("Address", ""), "NodeDatacenter": node.get("Datacenter", ""),
                    "Address": svc.get("Address") or node.get("Address", ""), "ID": svc.get("ID", ""),
                    "Name": svc.get("Service", ""), "Port": svc.get("Port", 0), "Status": "passing",
                    "Tags": list(svc.get("Tags") or [])})
    return sorted(out, key=lambda i: (i["Node"], i["ID"]))


def service_name(wanted: str) -> str:
    """The service name of consul-template's `tag.name` query."""
    return wanted.split(".", 1)[1] if "." in wanted else wanted


def parse_perms(perms: str) -> int:
    """Nomad's strconv.ParseUint(perms, 8, 12)."""
    try:
        mode = int(perms, 8)
    except ValueError:
        mode = -1
    if not perms or mode < 0 or mode > 0o7777 or not perms.isdigit():
        raise TemplateError(f'Failed to parse "{perms}" as octal')
    return mode


def escapes_via_symlink(path: str, alloc_dir: str) -> bool:
    """Nomad's pathEscapesBaseViaSymlink: `path`, every symlink resolved, leaves the allocation dir.

    The agent renders as its own user (root, usually) into dirs the task owns: a task that made
    `local` a symlink to /etc, or a source a symlink to /etc/shadow, must not make the agent write
    or read there."""
    return not _inside(os.path.realpath(path), os.path.realpath(alloc_dir))


def _existing_ancestor(path: str) -> str:
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def write(path: str, text: str, mode: int, uid: int | None = None, gid: int | None = None,
          alloc_dir: str | None = None) -> bool:
    """Write the rendered file atomically (temp file + rename, as consul-template); False when it
    already holds exactly this text with this mode, so an unchanged render touches nothing.
    With `alloc_dir`, a destination whose folder resolves (through symlinks) outside it is refused
    before anything is created there."""
    data = text.encode()
    parent = os.path.dirname(path)
    if alloc_dir is not None and escapes_via_symlink(_existing_ancestor(parent), alloc_dir):
        raise TemplateError(DEST_ESCAPES)
    os.makedirs(parent, exist_ok=True)
    if alloc_dir is not None and escapes_via_symlink(parent, alloc_dir):
        raise TemplateError(DEST_ESCAPES)
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                if f.read() == data:
                    return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmpl-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        if (uid is not None and uid >= 0) or (gid is not None and gid >= 0):
            os.chown(tmp, uid if uid is not None and uid >= 0 else -1, gid if gid is not None and gid >= 0 else -1)
        os.replace(tmp, path)  # replaces a symlink at `path` itself, never what it points to
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return True


def parse_env(text: str) -> dict[str, str]:
    """An `env = true` template's file as variables, the format hashicorp/go-envparse reads:
    `KEY=value` lines, optional `export `, `#` comments and blank lines, values unquoted (trimmed,
    a ` #` starts a comment), 'single-quoted' (literal) or "double-quoted" (\\n, \\t, \\", \\\\ ...).
    A line that is none of these is a TemplateError naming its number."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        name, eq, value = line.partition("=")
        name = name.strip()
        if not eq or not name or not (name[0].isalpha() or name[0] == "_") \
                or not all(c.isalnum() or c == "_" for c in name) or not name.isascii():
            raise TemplateError(f"line {number}: expected KEY=value")
        out[name] = _env_value(value.strip(), number)
    return out


_DQ_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "`": "`"}


def _env_value(value: str, number: int) -> str:
    if value.startswith("'"):
        end = value.find("'", 1)
        if end < 0 or (value[end + 1:].strip() and not value[end + 1:].strip().startswith("#")):
            raise TemplateError(f"line {number}: unterminated or trailing text after quoted value")
        return value[1:end]
    if value.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(value):
            c = value[i]
            if c == "\\" and i + 1 < len(value):
                out.append(_DQ_ESCAPES.get(value[i + 1], "\\" + value[i + 1]))
                i += 2
                continue
            if c == '"':
                rest = value[i + 1:].strip()
                if rest and not rest.startswith("#"):
                    raise TemplateError(f"line {number}: trailing text after quoted value")
                return "".join(out)
            out.append(c)
            i += 1
        raise TemplateError(f"line {number}: unterminated quoted value")
    cut = value.find(" #")
    return (value[:cut] if cut >= 0 else value).rstrip()

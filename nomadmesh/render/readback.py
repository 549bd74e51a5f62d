"""Read a job file this package wrote back into the Job JSON shape `job_dict` produces.

This is how we prove the HCL says what we meant: parse it with python-hcl2, walk exactly the
blocks and attributes the templates write, and refuse anything else (an extra attribute or
block, an interpolation, an unexpected type). If `hcl_to_job(render_hcl(s, p)) == job_dict(s, p)`
then the HCL and the JSON describe the same job and no value changed the structure.

It covers the subset of the jobspec that nomadmesh renders, not Nomad's whole jobspec.
"""
from __future__ import annotations

from typing import Any

import hcl2

from nomadmesh.errors import RenderError
from nomadmesh.render.durations import duration_ns

_BLOCK = "__is_block__"
_OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=True)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def hcl_unquote(raw: str) -> str:
    """The value of an HCL quoted-string literal as python-hcl2 v8 returns it (quotes included).

    python-hcl2 v8 keeps a string's source form: `'"a\\\\n$${b}"'`. We decode it the way HCL does,
    in one pass: backslash escapes, `$${` → `${`, `%%{` → `%{`. A bare `${` or `%{` is a template
    sequence, which nothing nomadmesh writes may contain, so it is an error here.
    """
    if not (isinstance(raw, str) and len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"'):
        raise RenderError(f"expected a quoted string, got {raw!r}")
    s, out, i = raw[1:-1], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            nxt = s[i + 1 : i + 2]
            if nxt in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[nxt])
                i += 2
                continue
            width = {"u": 4, "U": 8}.get(nxt)
            digits = s[i + 2 : i + 2 + width] if width else ""
            if not width or len(digits) != width or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
                raise RenderError(f"invalid escape in HCL string {raw!r} at offset {i}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif c in "$%" and s[i + 1 : i + 3] == c + "{":
            out.append(c + "{")
            i += 3
        elif c in "$%" and s[i + 1 : i + 2] == "{":
            raise RenderError(f"HCL string {raw!r} contains a template sequence at offset {i}")
        elif c == '"':
            raise RenderError(f"unescaped quote inside HCL string {raw!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Body:
    """One block body: take attributes and blocks by name, then insist nothing is left over."""

    def __init__(self, body: Any, where: str):
        if not isinstance(body, dict) or body.get(_BLOCK) is not True:
            raise RenderError(f"{where}: expected a block, got {body!r}")
        self.rest = {k: v for k, v in body.items() if k != _BLOCK}
        self.where = where

    def has(self, name: str) -> bool:
        return name in self.rest

    def string(self, name: str) -> str:
        return hcl_unquote(self._take(name))

    def strings(self, name: str) -> list[str]:
        value = self._take(name)
        if not isinstance(value, list):
            raise RenderError(f"{self.where}.{name}: expected a list, got {value!r}")
        return [hcl_unquote(v) for v in value]

    def int(self, name: str) -> int:
        value = self._take(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RenderError(f"{self.where}.{name}: expected an integer, got {value!r}")
        return value

    def bool(self, name: str) -> bool:
        value = self._take(name)
        if not isinstance(value, bool):
            raise RenderError(f"{self.where}.{name}: expected a boolean, got {value!r}")
        return value

    def blocks(self, name: str) -> list[_Body]:
        value = self.rest.pop(name, [])
        if not isinstance(value, list):
            raise RenderError(f"{self.where}.{name}: expected blocks, got {value!r}")
        return [_Body(b, f"{self.where}.{name}") for b in value]

    def block(self, name: str) -> _Body | None:
        found = self.blocks(name)
        if len(found) > 1:
            raise RenderError(f"{self.where}: more than one {name} block")
        return found[0] if found else None

    def labeled(self, name: str) -> list[tuple[str, _Body]]:
        out = []
        for item in self.rest.pop(name, []):
            if not (isinstance(item, dict) and len(item) == 1):
                raise RenderError(f"{self.where}.{name}: expected one labeled block, got {item!r}")
            ((label, body),) = item.items()
            label = hcl_unquote(label)
            out.append((label, _Body(body, f"{self.where}.{name}[{label}]")))
        return out

    def pairs(self) -> dict[str, str]:
        """A block of `KEY = "value"` attributes (env, meta): every entry must be a string."""
        return {k: self.string(k) for k in list(self.rest)}

    def mixed(self) -> dict[str, str | list[str]]:
        """A block of string or list-of-string attributes (driver config)."""
        return {
            k: self.strings(k) if isinstance(self.rest[k], list) else self.string(k) for k in list(self.rest)
        }

    def done(self) -> None:
        if self.rest:
            raise RenderError(f"{self.where}: unexpected {', '.join(sorted(self.rest))}")

    def _take(self, name: str) -> Any:
        if name not in self.rest:
            raise RenderError(f"{self.where}: missing {name}")
        value = self.rest.pop(name)
        if isinstance(value, list) and value and isinstance(value[0], dict) and (
            value[0].get(_BLOCK) or any(isinstance(v, dict) for v in value[0].values())
        ):
            raise RenderError(f"{self.where}.{name}: expected an attribute, found a block")
        return value


def hcl_to_job(text: str) -> dict[str, Any]:
    """Parse one rendered job file into the `job_dict` shape (durations in nanoseconds)."""
    try:
        doc = hcl2.loads(text, serialization_options=_OPTIONS)
    except Exception as e:  # python-hcl2 raises lark errors of several kinds
        raise RenderError(f"job file does not parse as HCL: {e}") from e
    root = _Body({**doc, _BLOCK: True}, "file")
    jobs = root.labeled("job")
    root.done()
    if len(jobs) != 1:
        raise RenderError(f"expected exactly one job block, found {len(jobs)}")
    name, body = jobs[0]
    job: dict[str, Any] = {
        "ID": name,
        "Name": name,
        "Datacenters": body.strings("datacenters"),
        "Region": body.string("region"),
        "Namespace": body.string("namespace"),
        "Type": body.string("type"),
    }
    meta = body.block("meta")
    if meta is not None:
        job["Meta"] = meta.pairs()
    job["TaskGroups"] = [_group(g, b) for g, b in body.labeled("group")]
    body.done()
    return job


def _group(name: str, body: _Body) -> dict[str, Any]:
    group: dict[str, Any] = {"Name": name, "Count": body.int("count")}
    group["Networks"] = [_network(n) for n in body.blocks("network")]
    group["Services"] = [_service(s) for s in body.blocks("service")]
    tasks = [_task(t, b) for t, b in body.labeled("task")]
    if tasks:  # an ingress gateway's group has none: Nomad injects its Envoy task
        group["Tasks"] = tasks
    update = body.block("update")
    if update is not None:
        group["Update"] = {
            "MaxParallel": update.int("max_parallel"),
            "HealthCheck": update.string("health_check"),
            "MinHealthyTime": duration_ns(update.string("min_healthy_time")),
            "HealthyDeadline": duration_ns(update.string("healthy_deadline")),
            "ProgressDeadline": duration_ns(update.string("progress_deadline")),
            "AutoRevert": update.bool("auto_revert"),
            "Canary": update.int("canary"),
        }
        update.done()
    restart = body.block("restart")
    if restart is not None:
        group["RestartPolicy"] = {
            "Attempts": restart.int("attempts"),
            "Interval": duration_ns(restart.string("interval")),
            "Delay": duration_ns(restart.string("delay")),
            "Mode": restart.string("mode"),
        }
        restart.done()
    body.done()
    return group


def _network(body: _Body) -> dict[str, Any]:
    network: dict[str, Any] = {"Mode": body.string("mode")}
    for label, port in body.labeled("port"):
        static = port.int("static") if port.has("static") else 0
        entry = {"Label": label, "Value": static, "To": port.int("to")}
        network.setdefault("ReservedPorts" if static else "DynamicPorts", []).append(entry)
        port.done()
    body.done()
    return network


def _service(body: _Body) -> dict[str, Any]:
    service: dict[str, Any] = {"Name": body.string("name"), "PortLabel": body.string("port")}
    if body.has("tags"):
        service["Tags"] = body.strings("tags")
    meta = body.block("meta")
    if meta is not None:
        service["Meta"] = meta.pairs()
    checks = [_check(c) for c in body.blocks("check")]
    if checks:
        service["Checks"] = checks
    connect = body.block("connect")
    if connect is not None:
        service["Connect"] = _connect(connect)
    body.done()
    return service


def _check(body: _Body) -> dict[str, Any]:
    check: dict[str, Any] = {
        "Name": body.string("name"),
        "Type": body.string("type"),
        "Interval": duration_ns(body.string("interval")),
        "Timeout": duration_ns(body.string("timeout")),
    }
    if body.has("path"):
        check["Path"] = body.string("path")
    if body.has("expose"):
        check["Expose"] = body.bool("expose")
    body.done()
    return check


def _connect(body: _Body) -> dict[str, Any]:
    gateway = body.block("gateway")
    if gateway is not None:
        body.done()
        return {"Gateway": _gateway(gateway)}
    sidecar = body.block("sidecar_service")
    body.done()
    if sidecar is None:
        return {}
    out: dict[str, Any] = {}
    proxy = sidecar.block("proxy")
    sidecar.done()
    if proxy is not None:
        upstreams = []
        for up in proxy.blocks("upstreams"):
            u: dict[str, Any] = {
                "DestinationName": up.string("destination_name"),
                "LocalBindPort": up.int("local_bind_port"),
            }
            if up.has("local_bind_address"):
                u["LocalBindAddress"] = up.string("local_bind_address")
            if up.has("datacenter"):
                u["Datacenter"] = up.string("datacenter")
            up.done()
            upstreams.append(u)
        proxy.done()
        out["Proxy"] = {"Upstreams": upstreams}
    return {"SidecarService": out}


def _gateway(body: _Body) -> dict[str, Any]:
    ingress = body.block("ingress")
    body.done()
    if ingress is None:
        raise RenderError(f"{body.where}: expected an ingress block")
    listeners = []
    for listener in ingress.blocks("listener"):
        services = []
        for svc in listener.blocks("service"):
            target: dict[str, Any] = {"Name": svc.string("name")}
            if svc.has("hosts"):
                target["Hosts"] = svc.strings("hosts")
            svc.done()
            services.append(target)
        listeners.append({"Port": listener.int("port"), "Protocol": listener.string("protocol"), "Services": services})
        listener.done()
    ingress.done()
    return {"Ingress": {"Listeners": listeners}}


def _task(name: str, body: _Body) -> dict[str, Any]:
    task: dict[str, Any] = {"Name": name, "Driver": body.string("driver")}
    config = body.block("config")
    task["Config"] = config.mixed() if config is not None else {}
    env = body.block("env")
    task["Env"] = env.pairs() if env is not None else {}
    resources = body.block("resources")
    if resources is not None:
        task["Resources"] = {"CPU": resources.int("cpu"), "MemoryMB": resources.int("memory")}
        resources.done()
    body.done()
    return task

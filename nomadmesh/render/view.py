"""Decisions shared by the HCL and the JSON form of a job, made once so the two cannot disagree.

`job_view(service, project)` works out everything the model does not state directly: which port
label the service registers, whether the port is mapped to the host, the task's env (with PORT),
which checks go through the sidecar, the driver config, and the ownership meta. An ingress gateway
has no task of its own (Nomad injects its Envoy): one port per listener, the service's published.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from nomadmesh.definitions.blocks import LEVELS as BLOCK_LEVELS
from nomadmesh.definitions.model import Check, Project, Service
from nomadmesh.render.hcl import VarPath
from nomadmesh.render.ownership import CANARY_META_KEY, job_meta

PORT_LABEL = "http"
PROJECT_DIR_VAR = "project_dir"  # the HCL2 variable a job file's paths under the project folder start from
Pairs = tuple[tuple[str, str], ...]
ConfigValue = str | tuple[str, ...] | VarPath


@dataclass(frozen=True)
class PortMap:
    """The group's `port "http"` block: `to` the service port; `static` host port or dynamic (None)."""

    label: str
    to: int
    static: int | None


@dataclass(frozen=True)
class JobView:
    service: Service
    project: Project
    meta: Pairs  # job meta: the project's (sorted), then nomadmesh's ownership keys
    port: PortMap | None
    service_port: str  # the service block's `port`: a number inside the netns, the label, or "" (a worker)
    checks: tuple[tuple[Check, bool], ...]  # (check, expose)
    config: tuple[tuple[str, ConfigValue], ...]  # driver config, in file order
    env: Pairs  # sorted by key
    extra_ports: tuple[PortMap, ...] = ()  # other nomad.ports labels, or a gateway's other listeners (dynamic)
    variables: tuple[str, ...] = ()  # the HCL2 variables the job file declares (each a string)
    canary_meta: Pairs = ()  # the service's canary_meta, marked (CANARY_META_KEY) when the job has canaries

    @property
    def vars(self) -> dict[str, object]:
        """The project's template variables, by name (`v.vars.<name>`, through a filter like any value)."""
        return dict(self.project.vars)

    @property
    def blocks(self) -> dict[str, Any]:
        """`nomad.job` / `group` / `task` / `sidecar_task` as JSON values, by level."""
        given = {level: json.loads(text) for level, text in self.service.run.blocks}
        return {level: given.get(level) for level in BLOCK_LEVELS}  # templates are StrictUndefined

    @property
    def port_maps(self) -> tuple[PortMap, ...]:
        """Every `port` block of the group's network, in order."""
        return ((self.port,) if self.port is not None else ()) + self.extra_ports


def listener_label(port: int) -> str:
    """A gateway listener's port label: the listener's port is `to`, the host port is Nomad's pick."""
    return f"listener_{port}"


def _gateway_ports(service: Service) -> tuple[PortMap, tuple[PortMap, ...]]:
    # The listener on the service's port is the published one; the others get dynamic host ports.
    main = PortMap(listener_label(service.port), service.port, service.run.publish or None)
    return main, tuple(PortMap(listener_label(lst.port), lst.port, None)
                       for lst in service.ingress if lst.port != service.port)


def service_label(service: Service) -> str:
    """The label of the service's own port: the one `nomad.ports` gives that number, else "http"."""
    return next((label for label, to in service.run.ports if to == service.port), PORT_LABEL)


def _port_map(service: Service) -> PortMap | None:
    # A Connect service is reached through its sidecar and needs no mapping unless published (or
    # labelled in nomad.ports); a plain service registers the label, so the label must exist
    # (dynamic if not published).
    label = service_label(service)
    if service.run.publish is None and service.connect and label not in dict(service.run.ports):
        return None
    static = service.run.publish or None  # publish 0 means a dynamic host port
    return PortMap(label, service.port, static)


def _named_ports(service: Service) -> tuple[PortMap, ...]:
    # The other labels of nomad.ports: dynamic host ports, so a check (or a scraper) can reach them.
    return tuple(PortMap(label, to, None) for label, to in service.run.ports if to != service.port)


def check_exposed(service: Service, check: Check) -> bool:
    """http checks of a Connect service go through the sidecar: the app listens only inside the netns."""
    return check.expose or (service.connect and check.type == "http")


@lru_cache(maxsize=4096)  # asked three times for each job rendered (view, config, variables); pathlib is slow
def portable_path(path: str, root: str | None) -> VarPath | None:
    """`path` as `${var.project_dir}/<rel>` when it lies in the project folder `root`, else None
    (a path elsewhere is the user's own, written as they gave it)."""
    if root is None:
        return None
    p, r = PurePosixPath(path).parts, PurePosixPath(root).parts
    if p[:len(r)] != r:  # the same as `root in path.parents or path == root`, without making each parent
        return None
    return VarPath(PROJECT_DIR_VAR, "/".join(p[len(r):]))


def _portable_work_dir(service: Service, root: str | None) -> VarPath | None:
    work_dir = service.run.work_dir
    return portable_path(work_dir, root) if work_dir is not None else None


def portable_variables(service: Service, root: str | None) -> tuple[str, ...]:
    """The HCL2 variables the service's job file needs: `portable(...)[1]`, without building the service."""
    where = _portable_work_dir(service, root)
    return () if where is None else (where.var_name,)


def portable(service: Service, root: str | None) -> tuple[Service, tuple[str, ...]]:
    """The service as its job file states it (machine paths made relative to the project folder),
    and the HCL2 variables that needs. The ownership hash is taken over this form, so the same
    folder cloned to two places renders the same file and the same hash."""
    where = _portable_work_dir(service, root)
    if where is None:
        return service, ()
    shown = "${var.%s}%s" % (where.var_name, f"/{where.rel}" if where.rel else "")  # noqa: UP031 - literal ${}
    return replace(service, run=replace(service.run, work_dir=shown)), (where.var_name,)


def _config(service: Service, port: PortMap | None, root: str | None) -> tuple[tuple[str, ConfigValue], ...]:
    run = service.run
    if run.driver == "docker":
        items: list[tuple[str, ConfigValue]] = [("image", run.image or "")]
        labels = ((port.label,) if port is not None else ()) + tuple(p.label for p in _named_ports(service))
        if labels:
            items.append(("ports", labels))
        return tuple(items)
    items = [("command", run.command or "")]
    if run.args:
        items.append(("args", run.args))
    if run.work_dir is not None:
        items.append(("work_dir", portable_path(run.work_dir, root) or run.work_dir))
    return tuple(items)


def _env(service: Service) -> Pairs:
    # PORT tells the sample apps (and most twelve-factor apps) where to listen; an explicit
    # PORT in the definition wins.
    env = {**({"PORT": str(service.port)} if service.port else {}), **dict(service.run.env)}
    return tuple(sorted(env.items()))


def _canary_meta(service: Service) -> Pairs:
    """What a canary registers as meta: the declared canary_meta (else the service's meta, as Nomad
    would register), plus CANARY_META_KEY when the update block places canaries."""
    if not service.run.update.canary:
        return service.run.canary_meta
    marked = {**dict(service.run.canary_meta or service.meta), CANARY_META_KEY: "true"}
    return tuple(marked.items())


def job_view(service: Service, project: Project, root: str | None = None) -> JobView:
    """`root`: the project folder; paths under it are written relative to `var.project_dir`."""
    stated, variables = portable(service, root)
    if service.is_gateway:
        main, extra = _gateway_ports(service)
        return JobView(service=service, project=project, meta=project.meta + job_meta(stated, project), port=main,
                       service_port=main.label, checks=(), config=(), env=(), extra_ports=extra,
                       canary_meta=_canary_meta(service))
    port = _port_map(service)
    return JobView(
        service=service,
        project=project,
        meta=project.meta + job_meta(stated, project),
        port=port,
        service_port=(str(service.port) if service.port else "") if service.connect else service_label(service),
        checks=tuple((c, check_exposed(service, c)) for c in service.checks),
        config=_config(service, port, root),
        env=_env(service),
        variables=variables,
        extra_ports=_named_ports(service),
        canary_meta=_canary_meta(service),
    )

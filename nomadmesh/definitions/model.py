"""The validated model of a folder of service definitions: frozen dataclasses, no I/O.

`nomadmesh.definitions.load_spec()` builds these from `services/*/service.json` (Consul's agent
service-definition format plus a `nomad` key) and the optional project file `nomadmesh.json`.
Everything downstream (render, graph, deploy) reads only these types.

Durations are kept as Nomad/Consul duration strings ("10s", "5m"), exactly as the user wrote
them after validation; the renderer writes them to HCL as-is and to the Job JSON as nanoseconds.
Mappings (env, meta) are stored as tuples of (key, value) pairs sorted by key, so models are
hashable and rendering is deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nomadmesh.definitions.variables import Value, Variable

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Upstream:
    destination_name: str
    local_bind_port: int
    local_bind_address: str = "127.0.0.1"
    datacenter: str | None = None


@dataclass(frozen=True)
class Check:
    """A health check on the service. http checks go through the sidecar (`expose = true`)."""

    type: str  # "http" or "tcp"
    name: str
    interval: str = "10s"
    timeout: str = "2s"
    path: str | None = None  # http only
    expose: bool = False  # http checks on a Connect service are exposed through the sidecar
    port: str | None = None  # a label of `nomad.ports`; None = the service's own port


@dataclass(frozen=True)
class Resources:
    cpu: int = 100  # MHz
    memory: int = 128  # MB


@dataclass(frozen=True)
class Update:
    """Nomad's update block; defaults are Nomad's own."""

    max_parallel: int = 1
    health_check: str = "checks"
    min_healthy_time: str = "10s"
    healthy_deadline: str = "5m"
    progress_deadline: str = "10m"
    auto_revert: bool = False
    canary: int = 0
    auto_promote: bool = False  # promote the canaries once healthy (Nomad needs canary > 0 for it)


@dataclass(frozen=True)
class Restart:
    """Nomad's restart block; defaults are Nomad's for service jobs."""

    attempts: int = 2
    interval: str = "30m"
    delay: str = "15s"
    mode: str = "fail"


@dataclass(frozen=True)
class Run:
    """How Nomad runs the service: the definition's extra `nomad` key."""

    driver: str = "raw_exec"  # raw_exec | exec | docker
    command: str | None = None  # raw_exec / exec
    args: tuple[str, ...] = ()
    work_dir: str | None = None  # absolute (relative paths are resolved against service.json's folder)
    image: str | None = None  # docker
    env: Pairs = ()
    count: int = 1
    resources: Resources = field(default_factory=Resources)
    publish: int | None = None  # host port for the service port: None = not published, 0 = dynamic
    update: Update = field(default_factory=Update)
    restart: Restart = field(default_factory=Restart)
    template: str | None = None  # the job template's file name; None = the pack's job.nomad.hcl.j2
    # `nomad.ports`: label -> port inside the allocation, sorted by label (Nomad's `port "<label>" { to = N }`).
    ports: tuple[tuple[str, int], ...] = ()
    # `nomad.job` / `group` / `task` / `sidecar_task`: (level, the block's JSON text, keys sorted),
    # checked against Nomad's jobspec schema (spec/blocks.py); text keeps the model hashable.
    blocks: tuple[tuple[str, str], ...] = ()
    # Nomad's service `canary_tags` / `canary_meta`: what a canary registers instead of tags / with meta.
    canary_tags: tuple[str, ...] = ()
    canary_meta: Pairs = ()


@dataclass(frozen=True)
class IngressService:
    """A service behind an ingress listener (Consul's ingress-gateway entry `Services[]`)."""

    name: str
    hosts: tuple[str, ...] = ()  # http listeners only: the Host values routed to it


@dataclass(frozen=True)
class IngressListener:
    """One listener of an ingress gateway (Consul's ingress-gateway entry `Listeners[]`)."""

    port: int
    protocol: str = "tcp"  # "tcp" or "http"
    services: tuple[IngressService, ...] = ()


@dataclass(frozen=True)
class Subset:
    """A named group of the service's instances (Consul's service-resolver `Subsets`)."""

    name: str
    filter: str  # a go-bexpr expression over a service instance: 'Service.Meta.version == "2"'
    only_passing: bool = False


@dataclass(frozen=True)
class Split:
    """One share of the service's HTTP traffic (Consul's service-splitter `Splits[]`)."""

    weight: float  # percent, in steps of 0.01
    subset: str = ""  # "" = the target's default subset
    service: str = ""  # "" = this service


@dataclass(frozen=True)
class Route:
    """One HTTP route (Consul's service-router `Routes[]`), kept as Consul's JSON text (hashable)."""

    consul: str  # {"Match": {"HTTP": ...}, "Destination": ...}, keys sorted
    service: str  # the destination service ("" = this service)
    subset: str  # the destination subset ("" = its default)
    where: str  # the route's path in service.json, for messages


@dataclass(frozen=True)
class Traffic:
    """service.json `traffic`: how calls to the service are resolved, split and routed. Deploy
    writes it as the service's service-resolver / service-splitter / service-router entries."""

    subsets: tuple[Subset, ...] = ()
    default_subset: str = ""
    splits: tuple[Split, ...] = ()
    routes: tuple[Route, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.subsets or self.default_subset or self.splits or self.routes)


@dataclass(frozen=True)
class Service:
    name: str
    port: int  # 0: a Connect service without a port (a worker that only calls its upstreams)
    source: str  # the service.json path, for messages
    tags: tuple[str, ...] = ()
    meta: Pairs = ()
    connect: bool = True  # has `connect { sidecar_service {} }`
    upstreams: tuple[Upstream, ...] = ()
    checks: tuple[Check, ...] = ()
    run: Run = field(default_factory=Run)
    # Consul keys with a Nomad `service` counterpart of the same name (added after the renderer
    # was written: check that it renders them).
    address: str | None = None
    enable_tag_override: bool = False
    # An ingress gateway (`"kind": "ingress-gateway"`): its listeners. Its `upstreams` then list
    # each service behind a listener (local_bind_port = the listener's port), so the graph,
    # `mesh check` and the deploy order treat gateway -> service like any declared upstream.
    ingress: tuple[IngressListener, ...] = ()
    # Consul's `connect.sidecar_service.proxy.config.protocol` (tcp/http/http2/grpc); None = not declared
    # (Consul then takes tcp). Deploy also writes it as the service's `service-defaults` entry.
    protocol: str | None = None
    traffic: Traffic = field(default_factory=Traffic)  # service.json `traffic`
    # Consul's `...proxy.config.envoy_prometheus_bind_addr`: where the sidecar serves its Envoy metrics
    # at /metrics for Prometheus (host:port inside the allocation's network namespace); None = no such listener.
    prometheus_bind_addr: str | None = None

    @property
    def is_gateway(self) -> bool:
        return bool(self.ingress)


@dataclass(frozen=True)
class IntentionRule:
    """An extra intention declared in nomadmesh.json `intentions` (beside the allows derived from upstreams).

    `permissions` is Consul's L7 `Permissions` list as canonical JSON text ("" for a plain action),
    so the model stays hashable; `where` is the rule's field path for messages (`intentions[2]`).
    """

    source: str
    destination: str
    action: str | None  # "allow" | "deny"; None when permissions decide
    permissions: str = ""
    description: str = ""
    where: str = ""


@dataclass(frozen=True)
class Project:
    """Settings from the optional project file `nomadmesh.json` at the folder root."""

    datacenters: tuple[str, ...] = ("dc1",)
    region: str = "global"
    namespace: str = "default"
    external_services: tuple[str, ...] = ()  # upstreams allowed although not defined here
    source: str | None = None
    declared: tuple[Variable, ...] = ()  # template variables nomadmesh.json declares
    vars: tuple[tuple[str, Value], ...] = ()  # their values (see spec/variables.py), by name
    meta: Pairs = ()  # job meta for every job, beside nomadmesh's own keys (which it may not use)
    # The project's own `templates/` folder when it has one (it overrides built-in templates by
    # file name). Where the project is, not what it is: left out of the definition hash.
    templates_dir: str | None = None
    # Whose jobs these are (`definitions.project.project_name`): nomadmesh.json's `name`, else
    # "default", plus `.<env>` under --env. Not the folder's name: two clones render the same bytes.
    name: str = "default"
    derive_intentions: bool = True  # `derive_intentions: false`: write no allow per declared upstream
    intentions: tuple[IntentionRule, ...] = ()


@dataclass(frozen=True)
class Spec:
    project: Project
    services: tuple[Service, ...]  # sorted by name
    warnings: tuple[str, ...] = ()  # rendered Problem strings of severity "warning"
    root: str | None = None  # the project folder (absolute): job files write paths under it as var.project_dir

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)


def resolve_work_dir(service_file: Path, work_dir: str | None) -> str | None:
    """Resolve a relative `work_dir` against the folder of its service.json (as compose does)."""
    if work_dir is None:
        return None
    p = Path(work_dir)
    return str(p if p.is_absolute() else (service_file.parent / p).resolve())

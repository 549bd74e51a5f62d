"""Reading the mesh from the APIs: the I/O edge in front of the pure `model`.

`read_mesh(apis)` reads the catalog's nodes, each node's services and every check (joined into
the rows `/v1/health/service` would give, one read per node instead of one per service name),
the service-intentions config entries plus Nomad's allocations, asks for the default policy the
way the CLI does (`deploy.intentions.load_default_policy`: Consul's own /check on unused names),
and hands them to `model.build_mesh`. A Nomad that cannot be reached costs the job/alloc columns,
not the page: it is reported as a problem. `task_log_tail` reads the end of a task's log, and
`sidecar_stats` a sidecar's Envoy figures where the target serves them (the dev agent only), and
`proxy_refusal` what Envoy last refused for a sidecar that the dev agent now serves fail-closed.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from nomadmesh.deploy.intentions import load_default_policy
from nomadmesh.deploy.jobs import load_jobs
from nomadmesh.deploy.live import live_orphans, live_plan
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import Target, consul_client, for_namespace
from nomadmesh.errors import SpecError, TargetError
from nomadmesh.mesh import intentions as ixn
from nomadmesh.mesh.traffic import WINDOW_S, Figures
from nomadmesh.ui import promql, validations
from nomadmesh.ui.api import ApiClient, Apis
from nomadmesh.ui.model import Alloc, Mesh, build_mesh, health_rows
from nomadmesh.ui.routing import ReleaseView, Routing, release_of, routing

READ_WORKERS = 8
LOG_TAIL_BYTES = 4096


def _path(name: str) -> str:
    return quote(name, safe="")


def read_mesh(apis: Apis) -> Mesh:
    """The mesh as the APIs show it now (the default policy through the Consul client's SDK)."""
    api = apis.consul
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        entries_f = pool.submit(api.get, f"/v1/config/{ixn.KIND}")
        policy_f = pool.submit(load_default_policy, api.sdk)
        allocs_f = pool.submit(apis.nomad.get, "/v1/allocations")
        health = service_health(api, pool)
        entries = entries_f.result().data or []
        problems: list[str] = []
        try:
            default_allow = policy_f.result().allow
        except TargetError as e:
            problems.append(f"default intention policy unknown, allow assumed: {e}")
            default_allow = True
        try:
            allocs = allocs_f.result().data or []
        except TargetError as e:
            problems.append(f"Nomad (jobs and allocations not shown): {e}")
            allocs = []
    return build_mesh(health, allocs, entries, default_allow, problems)


def service_health(api: ApiClient, pool: ThreadPoolExecutor) -> dict[str, list[dict[str, Any]]]:
    """Every service's health rows in one read per node plus two, not one per service name (200
    services with their sidecars were 400 reads): the nodes, each node's services, every check.
    The checks are read last, so a service registered meanwhile shows without checks at worst."""
    nodes = api.get("/v1/catalog/nodes").data or []
    services_f = {n["Node"]: pool.submit(api.get, f"/v1/catalog/node/{_path(n['Node'])}") for n in nodes}
    services_of = {name: (f.result().data or {}).get("Services") or {} for name, f in services_f.items()}
    checks = api.get("/v1/health/state/any").data or []
    return health_rows(nodes, services_of, checks)


@dataclass(frozen=True)
class LogTail:
    alloc: Alloc
    task: str
    kind: str  # stdout | stderr
    text: str | None
    error: str | None = None


def task_log_tail(apis: Apis, alloc: Alloc, task: str, kind: str, size: int = LOG_TAIL_BYTES) -> LogTail:
    """The last `size` bytes of a task's stdout or stderr, through Nomad's logs endpoint."""
    try:
        reply = apis.nomad.get(f"/v1/client/fs/logs/{_path(alloc.id)}",
                               {"task": task, "type": kind, "origin": "end", "offset": str(size),
                                "plain": "true"}, text=True, timeout=5)
    except TargetError as e:
        return LogTail(alloc, task, kind, None, str(e))
    return LogTail(alloc, task, kind, reply.data)


def log_tails(apis: Apis, allocs: list[Alloc]) -> list[LogTail]:
    """stdout and stderr of every task of `allocs` (the service's task first, then its sidecar)."""
    wanted = [(a, t, k) for a in allocs
              for t in sorted(a.tasks, key=lambda t: (t.startswith("connect-proxy-"), t))
              for k in ("stdout", "stderr")]
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        return list(pool.map(lambda w: task_log_tail(apis, *w), wanted))


@dataclass(frozen=True)
class SidecarStats:
    """A sidecar's Envoy figures (`figures`, as the agent's endpoint gives them), or why there are none."""

    sidecar_id: str
    figures: dict[str, Any] | None
    reason: str | None = None
    fetched_at: float | None = None


STATS_TIMEOUT_S = 3.0
NOT_ON_TARGET = ("not available on this target (Envoy's admin API is only reachable inside the "
                 "allocation's network namespace, and neither the Nomad nor the Consul API exposes it)")


def sidecar_stats(apis: Apis, sidecar_id: str) -> SidecarStats:
    """Envoy admin figures for a sidecar, from the dev agent's `/v1/nomadmesh/sidecar/<id>/stats`.

    Envoy's admin listener is bound inside the allocation's network namespace, which neither the
    Nomad nor the Consul HTTP API reaches; only the dev agent, which owns those namespaces, serves
    this (non-Consul) endpoint. A real Consul answers it 404 or 403: "not available on this target".
    The agent says 503 with a one-line reason when the sidecar is not running; that is shown as is.
    """
    api = apis.consul
    url = f"{api.endpoint.url}/v1/nomadmesh/sidecar/{_path(sidecar_id)}/stats"
    try:
        resp = api.session.get(url, timeout=STATS_TIMEOUT_S)
    except requests.RequestException as e:
        return SidecarStats(sidecar_id, None, f"not available: GET {url}: {type(e).__name__}: {e}")
    if resp.status_code == 503:
        why = resp.text.strip()[:300] or "the sidecar is not running"
        return SidecarStats(sidecar_id, None, f"not available: {why}")
    if resp.status_code != 200:
        return SidecarStats(sidecar_id, None, NOT_ON_TARGET)
    try:
        body = resp.json()
        return SidecarStats(sidecar_id, dict(body["Figures"]), None, float(body.get("FetchedAt") or 0) or None)
    except (ValueError, KeyError, TypeError):
        return SidecarStats(sidecar_id, None, NOT_ON_TARGET)


def proxy_refusal(apis: Apis, sidecar_id: str) -> str | None:
    """One line when Envoy refused `sidecar_id`'s configuration and the dev agent serves it
    fail-closed (its public listener admits nobody), from `/v1/nomadmesh/proxies`; None when all is
    well, or where the target has no such endpoint (a real Consul)."""
    api = apis.consul
    try:
        resp = api.session.get(f"{api.endpoint.url}/v1/nomadmesh/proxies", timeout=STATS_TIMEOUT_S)
        rows = resp.json() if resp.status_code == 200 else []
        row = next((r for r in rows if isinstance(r, dict) and r.get("ProxyID") == sidecar_id), None)
    except (requests.RequestException, ValueError):
        return None
    nack = (row or {}).get("LastNack") or {}
    if not row or not row.get("FailClosed"):
        return None
    return (f"Envoy refused this sidecar's {nack.get('Type') or 'configuration'} update: "
            f"{str(nack.get('Detail') or '')[:300]} — it admits no caller until a valid policy is written.")


NO_FIGURES = ("no traffic figures: this target serves no /v1/nomadmesh/traffic (only the dev agent samples its "
              "sidecars); pass --metrics-url with a Prometheus that scrapes the sidecars' Envoy metrics "
              "(Consul's envoy_prometheus_bind_addr proxy config)")
TRAFFIC_TIMEOUT_S = 10.0


def traffic_figures(apis: Apis, mesh: Mesh, metrics_url: str | None = None,
                    window_s: float | None = None) -> tuple[Figures | None, str]:
    """The mesh's traffic over the last minute, or (None, why not): from Prometheus when a metrics
    URL is given (`promql`), else from the dev agent's `/v1/nomadmesh/traffic`, which a real Consul
    does not have (404/403)."""
    if metrics_url:
        try:
            return promql.prometheus_figures(metrics_url, {s.name: [u.destination for u in s.upstreams]
                                                           for s in mesh.services}, window_s or WINDOW_S), ""
        except promql.MetricsError as e:
            return None, f"no traffic figures: Prometheus: {e}"
    api = apis.consul
    url = f"{api.endpoint.url}/v1/nomadmesh/traffic"
    try:
        resp = api.session.get(url, params={"window": str(window_s)} if window_s else None,
                               timeout=TRAFFIC_TIMEOUT_S)
    except requests.RequestException as e:
        return None, f"no traffic figures: GET {url}: {type(e).__name__}: {e}"
    if resp.status_code != 200:
        return None, NO_FIGURES
    try:
        return Figures.from_json(resp.json()), ""
    except (ValueError, TypeError, KeyError):
        return None, NO_FIGURES


def protocol_of(apis: Apis, name: str) -> tuple[str, str]:
    """The protocol `name`'s sidecars speak and where that is said: its service-defaults, else the
    global proxy-defaults, else Consul's default, tcp."""
    api = apis.consul
    defaults = api.get(f"/v1/config/service-defaults/{_path(name)}", allow_404=True).data or {}
    if defaults.get("Protocol"):
        return str(defaults["Protocol"]).lower(), f"service-defaults {name}"
    proxy = api.get("/v1/config/proxy-defaults/global", allow_404=True).data or {}
    if (proxy.get("Config") or {}).get("protocol"):
        return str(proxy["Config"]["protocol"]).lower(), "proxy-defaults global"
    return "tcp", "no service-defaults protocol: Consul's default"


def service_routing(apis: Apis, name: str, job: str | None) -> tuple[Routing, ReleaseView | None]:
    """`name`'s resolver, splitter and router (`/v1/config/<kind>/<name>`), and, when they carry a
    running release's Meta, the release with its job's latest Nomad deployment."""
    api = apis.consul
    with ThreadPoolExecutor(max_workers=3) as pool:
        resolver, splitter, router = pool.map(
            lambda kind: api.get(f"/v1/config/{kind}/{_path(name)}", allow_404=True).data,
            ("service-resolver", "service-splitter", "service-router"))
    view = routing(name, resolver, splitter, router)
    if release_of(resolver, splitter, None) is None:
        return view, None
    deployment = None
    if job:
        try:
            deployment = apis.nomad.get(f"/v1/job/{_path(job)}/deployment", allow_404=True).data
        except TargetError:
            deployment = None  # the release is still shown, from its entries
    return view, release_of(resolver, splitter, deployment)


def mesh_validations(apis: Apis, mesh: Mesh) -> list[validations.Finding]:
    """What `mesh check` says of the live declared upstreams, and L7 intentions on tcp destinations."""
    protocols = {d: protocol_of(apis, d)[0] for d in validations.l7_destinations(mesh)}
    return validations.ordered(validations.mesh_findings(mesh) + validations.l7_on_tcp(mesh, protocols))


def plan_validations(target: Target, definitions: validations.Definitions) -> list[validations.Finding]:
    """What `nomadmesh plan` says of the folder against the cluster (drift, changed and new jobs,
    conflicts, orphans), by the same calls; what loading the definitions refuses instead, if it does."""
    try:
        rendered = load_jobs(definitions.services_dir, definitions.project_file, env=definitions.env,
                             environ=os.environ)
    except SpecError as e:
        return validations.ordered(validations.spec_findings(e.problems))
    target = for_namespace(target, rendered.namespace)
    nomad = NomadAPI(target)
    try:
        plan = live_plan(nomad, rendered, consul_client(target))
        orphans = live_orphans(nomad, rendered)
    finally:
        nomad.close()
    warnings = [validations.Finding("warning", "definitions", w) for w in rendered.warnings]
    return validations.ordered(validations.plan_findings(plan, orphans) + warnings)

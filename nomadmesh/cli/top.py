"""`nomadmesh top`: the mesh's traffic per edge and health per service in the terminal, refreshing."""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from nomadmesh.cli.options import json_option, target_options

if TYPE_CHECKING:  # annotations only: commands import their libraries lazily, to keep --help fast
    from rich.console import RenderableType

    from nomadmesh.deploy.target import Target
    from nomadmesh.ui.console import Snapshot


@click.command("top")
@target_options
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@json_option
@click.option("--metrics-url", metavar="URL", envvar="NOMADMESH_METRICS_URL",
              help="Prometheus base URL that scrapes the sidecars' Envoy metrics (envoy_prometheus_bind_addr); "
                   "without it, the dev agent's own sampling.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.5, 60),
              help="Seconds between refreshes.")
def top_command(target: Target, once: bool, as_json: bool, metrics_url: str | None, interval: float) -> None:
    """Requests/s, error share and p99 latency per edge, health per service, over the last minute.

    Figures come from Prometheus with --metrics-url (real clusters), else from the dev agent, which
    samples its sidecars' Envoy stats; without either, edges and services are listed with where
    figures would come from.
    `--once --json` prints one snapshot for scripts:
    {"edges": [{"source", "destination", "rps", "error_share", "p99_ms", ...}], "services": [...]}.

    Example:

        nomadmesh top

        nomadmesh top --once --json
    """
    if as_json and not once:
        raise click.UsageError("--json needs --once (a refreshing table is for people, a snapshot for scripts)")
    if once:
        snap = _snapshot(target, metrics_url, first=True)
        click.echo(json.dumps(snap.to_json(), indent=2) if as_json else _plain(snap))
        return
    from rich.live import Live

    with Live(_table(_snapshot(target, metrics_url, first=True)), auto_refresh=False, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(_table(_snapshot(target, metrics_url)), refresh=True)
        except KeyboardInterrupt:
            pass


FIRST_WAIT_S = 4.0  # the dev agent's sampler needs two samples (2 s apart) for its first rates


def _snapshot(target: Target, metrics_url: str | None, first: bool = False) -> Snapshot:
    from nomadmesh.ui import read
    from nomadmesh.ui.api import apis_for
    from nomadmesh.ui.console import snapshot

    apis = apis_for(target)
    try:
        mesh = read.read_mesh(apis)
        figures, why = read.traffic_figures(apis, mesh, metrics_url)
        if first and figures is not None and figures.window_s == 0:  # just started sampling
            time.sleep(FIRST_WAIT_S / 2)
            figures, why = read.traffic_figures(apis, mesh, metrics_url)
        return snapshot(mesh, figures, why)
    finally:
        apis.close()


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _edge_row(e: dict[str, Any]) -> list[str]:
    verdict = e["verdict"] + (" (no healthy instance)" if e["broken"] else "")
    return [f"{e['source']} → {e['destination']}", verdict,
            _num(e.get("rps")) + (" cx/s" if e.get("unit") == "connections" else ""),
            _pct(e.get("error_share")), _num(e.get("rbac_denied_per_s")),
            _num(e.get("p50_ms"), "{:.1f}"), _num(e.get("p99_ms"), "{:.1f}")]


EDGE_HEAD = ["edge", "verdict", "rps", "errors", "denied/s", "p50 ms", "p99 ms"]
SERVICE_HEAD = ["service", "health", "versions", "rps in", "errors", "denied/s", "p99 ms"]


def _service_row(s: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"v{k}: {n}" for k, n in s["versions"].items())
    return [s["name"], f"{s['health']} ({s['passing']}/{s['instances']})", versions,
            _num(s.get("rps")), _pct(s.get("error_share")), _num(s.get("rbac_denied_per_s")),
            _num(s.get("p99_ms"), "{:.1f}")]


def _plain(snap: Snapshot) -> str:
    body = snap.to_json()
    lines = [f"figures: {snap.figures_from}" + (f" (last {snap.window_s:.0f} s)" if snap.has_figures else "")]
    for head, rows in ((EDGE_HEAD, [_edge_row(e) for e in body["edges"]]),
                       (SERVICE_HEAD, [_service_row(s) for s in body["services"]])):
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append("")
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    return "\n".join(lines)


def _table(snap: Snapshot) -> RenderableType:
    from rich.console import Group
    from rich.table import Table

    body = snap.to_json()
    edges = Table(*EDGE_HEAD, title="Edges", title_justify="left")
    for e in body["edges"]:
        style = "red" if e["verdict"] in ("denied", "warning") or e["broken"] or (e.get("error_share") or 0) > 0 else ""
        edges.add_row(*_edge_row(e), style=style)
    services = Table(*SERVICE_HEAD, title="Services", title_justify="left")
    for s in body["services"]:
        services.add_row(*_service_row(s), style="" if s["health"] == "all passing" else "yellow")
    where = f"figures: {snap.figures_from}" + (f" (last {snap.window_s:.0f} s)" if snap.has_figures else "")
    return Group(where, edges, services)

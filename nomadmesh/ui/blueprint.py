"""The web UI as one Quart blueprint: pages, live fragments, server-sent events, intention forms.

`create_ui_blueprint(target_provider)` needs only a function giving the `Target` to read: the dev
agent passes its own Nomad/Consul addresses, `nomadmesh ui` the ones from flags or environment.
Every page is `base.html` around a live fragment (`?fragment=1` renders the fragment alone); the
page's script listens on `events` (SSE) and refetches the fragment on each `changed` event.
Forms work without JavaScript (POST, then redirect; the app that mounts the blueprint guards them
with `nomadmesh.webguard`); intention writes go through
`nomadmesh.deploy.intentions`, the same check-and-set code as the CLI.

Views are async; what reads or writes the cluster (blocking HTTP through the API clients) runs in
the loop's executor (`run_sync`), and the event stream awaits the change feed without a thread.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import consul as consul_lib
from quart import Blueprint, Response, redirect, render_template, request, url_for
from quart.utils import run_sync

from nomadmesh.deploy import intentions as writer
from nomadmesh.deploy.target import Target, consul_client
from nomadmesh.errors import NomadMeshError
from nomadmesh.mesh import intentions as ixn
from nomadmesh.mesh.intention_rules import HTTP_METHODS
from nomadmesh.mesh.permission_input import PATH_KEYS, BadPermission
from nomadmesh.ui import console, l7, model, read, topology
from nomadmesh.ui.api import Apis, apis_for
from nomadmesh.ui.events import ChangeFeed
from nomadmesh.ui.routing import ReleaseView, Routing
from nomadmesh.ui.validations import Definitions, Finding

log = logging.getLogger("nomadmesh.ui")

HEARTBEAT_S = 10.0
READY_FALLBACK_S = 3.0  # say "ready" even if a watched API (say, Nomad) cannot be reached
PAGES = {"services": "Services", "intentions": "Intentions", "topology": "Topology", "validations": "Validations"}

# The pages load only their own ui.css and ui.js and talk only to their own server (fragments,
# events, forms): nothing inline, nothing from elsewhere, never inside another site's frame.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
    "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    # Service names in page URLs stay here; not no-referrer, with which Chromium sends the
    # form posts `Origin: null`, which the cross-site guard rightly refuses.
    "Referrer-Policy": "same-origin",
}


def create_ui_blueprint(target_provider: Callable[[], Target], metrics_url: str | None = None,
                        definitions: Definitions | None = None) -> Blueprint:
    bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/static")

    def apis() -> Apis:
        return apis_for(target_provider())

    feed = ChangeFeed(apis)

    async def page(template: str, active: str, status: int = 200, **ctx: Any) -> Response:
        fragment = request.args.get("fragment") == "1"
        target = target_provider()
        ctx.setdefault("fragment_url", _fragment_url())
        html = await render_template(f"ui/{'_' if fragment else ''}{template}.html", active=active, pages=PAGES,
                                     target=target, **ctx)
        return Response(html, status=status, mimetype="text/html")

    def read_or_error() -> tuple[model.Mesh | None, str | None]:
        clients = apis()
        try:
            return read.read_mesh(clients), None
        except NomadMeshError as e:
            return None, str(e)
        finally:
            clients.close()

    @bp.after_request
    def _security_headers(resp: Response) -> Response:
        resp.headers.update(SECURITY_HEADERS)
        return resp

    @bp.get("/")
    async def index() -> Response:
        return redirect(url_for(".services"))  # type: ignore[return-value]

    @bp.get("/services")
    async def services() -> Response:
        mesh, error = await run_sync(read_or_error)()
        return await page("services", "services", mesh=mesh, error=error)

    @bp.get("/services/<path:name>")
    async def service(name: str) -> Response:
        mesh, error = await run_sync(read_or_error)()
        svc = mesh.service(name) if mesh else None
        ups, downs = model.edges_of(mesh, name) if mesh else ([], [])
        logs: list[read.LogTail] = []
        stats: read.SidecarStats | None = None
        refusal: str | None = None
        routes: tuple[Routing | None, ReleaseView | None, str | None] = (None, None, None)
        if svc is not None:
            logs, stats, refusal = await run_sync(_logs_stats_refusal)(svc)
            routes = await run_sync(_routing)(svc)
        status = 404 if mesh is not None and svc is None else 200
        return await page("service", "services", status=status, mesh=mesh, error=error, name=name, svc=svc,
                          upstreams=ups, downstreams=downs, logs=logs, stats=stats, refusal=refusal,
                          routing=routes[0], release=routes[1], routing_error=routes[2])

    def _routing(svc: model.Service) -> tuple[Routing | None, ReleaseView | None, str | None]:
        """The service's routing entries and running release, or why they cannot be read."""
        clients = apis()
        try:
            job = next((i.alloc.job for i in svc.instances if i.alloc), None)
            return (*read.service_routing(clients, svc.name, job), None)
        except NomadMeshError as e:
            return None, None, str(e)
        finally:
            clients.close()

    def _logs_stats_refusal(svc: model.Service) -> tuple[list[read.LogTail], read.SidecarStats | None, str | None]:
        clients = apis()
        try:
            allocs = list({i.alloc.id: i.alloc for i in svc.instances if i.alloc}.values())
            sidecar = next((i.sidecar for i in svc.instances if i.sidecar), None)
            if sidecar is None:
                return read.log_tails(clients, allocs), None, None
            return (read.log_tails(clients, allocs), read.sidecar_stats(clients, sidecar.id),
                    read.proxy_refusal(clients, sidecar.id))
        finally:
            clients.close()

    @bp.get("/intentions")
    async def intentions() -> Response:
        return await _intentions_page()

    async def _intentions_page(status: int = 200, form_error: str | None = None,
                               form: dict[str, str] | None = None) -> Response:
        mesh, error = await run_sync(read_or_error)()
        notice = request.args.get("notice") if status == 200 else None
        return await page("intentions", "intentions", status=status, mesh=mesh, error=error,
                          form_error=form_error, form=form or {"action": "deny"}, notice=notice)

    @bp.post("/intentions")
    async def create_intention() -> Response:
        posted = await request.form
        form = {k: posted.get(k, "").strip() for k in ("source", "destination", "action", "description")}
        problem = _form_problem(form)
        if problem is None:
            replace = posted.get("replace") == "1"  # the edge panel's allow/deny say they replace L7 rules
            problem = await _write(lambda c: writer.set_intention(c, form["source"], form["destination"],
                                                                  form["action"], form["description"],
                                                                  replace=replace))
        if problem:
            return await _intentions_page(400, problem, form)
        return _done(f"{form['action']} {form['source']} → {form['destination']} saved", posted.get("back", ""))

    @bp.post("/intentions/flip")
    async def flip_intention() -> Response:
        posted = await request.form
        src, dst = posted.get("source", ""), posted.get("destination", "")
        mesh, error = await run_sync(read_or_error)()
        current = next((i for i in mesh.intentions if (i.source, i.destination) == (src, dst)), None) if mesh else None
        if error or current is None or current.action is None:
            problem = error or (f"{src} → {dst}: no such intention" if current is None
                                else f"{src} → {dst}: has L7 permissions; edit it with the CLI")
            return await _intentions_page(400, problem)
        action = "deny" if current.action == "allow" else "allow"
        problem = await _write(lambda c: writer.set_intention(c, src, dst, action, current.description))
        if problem:
            return await _intentions_page(400, problem)
        return _done(f"{src} → {dst} is now {action}")

    @bp.post("/intentions/delete")
    async def delete_intention() -> Response:
        posted = await request.form
        src, dst = posted.get("source", ""), posted.get("destination", "")
        if not src or not dst:
            return await _intentions_page(400, "source and destination are required")
        problem = await _write(lambda c: writer.delete_intention(c, src, dst))
        if problem:
            return await _intentions_page(400, problem)
        return _done(f"{src} → {dst} deleted", posted.get("back", ""))

    async def _write(action: Callable[[consul_lib.Consul], object]) -> str | None:
        """Run one write through the shared CAS code (in the executor: it is blocking HTTP);
        the error text for the page, or None."""
        def write() -> str | None:
            client = consul_client(target_provider())
            try:
                action(client)
            except NomadMeshError as e:
                return str(e)
            except ValueError as e:  # an argument the writer refuses (it raises TargetError for Consul)
                return str(e)
            return None

        return await run_sync(write)()

    def _done(notice: str, back: str = "") -> Response:
        """After a write: back to the topology page it came from (only that page of this UI), else
        to the intentions page, saying what was done."""
        topo = url_for(".topology_page")
        if back == topo or back.startswith(topo + "?"):
            return redirect(back, code=303)  # type: ignore[return-value]
        return redirect(url_for(".intentions", notice=notice), code=303)  # type: ignore[return-value]

    def read_live() -> tuple[model.Mesh | None, str | None, console.Snapshot | None]:
        """The mesh and its traffic (dev agent or Prometheus), joined for the live graph."""
        clients = apis()
        try:
            mesh = read.read_mesh(clients)
            figures, why = read.traffic_figures(clients, mesh, metrics_url)
            return mesh, None, console.snapshot(mesh, figures, why)
        except NomadMeshError as e:
            return None, str(e), None
        finally:
            clients.close()

    @bp.get("/topology")
    async def topology_page() -> Response:
        return await _topology()

    async def _topology(status: int = 200, l7_error: str | None = None,
                        l7_form: dict[str, Any] | None = None) -> Response:
        mesh, error, snap = await run_sync(read_live)()
        wanted = request.args.get("q", "").strip()
        shown = console.filtered(snap, wanted) if snap else None
        lay = topology.layout({s.name: console.CSS_HEALTH[s.health] for s in shown.services},
                              [e.edge for e in shown.edges]) if shown else None
        views = {(e.source, e.destination): e for e in shown.edges} if shown else {}
        src, _, dst = request.args.get("edge", "").partition(">")
        picked = views.get((src, dst))
        l7_target, refusal = None, None
        if picked is not None and mesh is not None:
            l7_target = l7.target_of(src, dst, mesh.intentions, mesh.default_allow)
            refusal = await run_sync(_l7_refusal)(dst)
        return await page("topology", "topology", status=status, mesh=mesh, error=error, snap=shown, layout=lay,
                          geometry=topology, q=wanted, total=len(snap.services) if snap else 0, views=views,
                          service_views={s.name: s for s in shown.services} if shown else {},
                          picked=picked, rule_text=ixn.permission_text, l7_target=l7_target,
                          l7_refusal=refusal, l7_error=l7_error,
                          l7_form=l7_form or {"action": "allow", "path_kind": "path-prefix"},
                          http_methods=HTTP_METHODS, path_kinds=PATH_KEYS,
                          here=url_for(".topology_page", q=wanted or None, edge=request.args.get("edge") or None),
                          # the page a failed L7 form re-renders is still the topology's (not the form's URL)
                          fragment_url=url_for(".topology_page", q=wanted or None,
                                               edge=request.args.get("edge") or None, fragment="1"))

    def _l7_refusal(destination: str) -> str | None:
        """Why the destination cannot have L7 rules (its protocol), None when it can or cannot be read."""
        clients = apis()
        try:
            return l7.protocol_refusal(destination, *read.protocol_of(clients, destination))
        except NomadMeshError:
            return None  # Consul refuses the write with its own text then
        finally:
            clients.close()

    async def _l7_edit(edit: Callable[[l7.Target, dict[str, Any]], tuple[ixn.Permission, ...]],
                       done: str) -> Response:
        """Read the edge's L7 target, compute its new rules with `edit`, write them only while the
        intention is still what was read (check-and-set, as `nomadmesh intent`)."""
        posted = await request.form
        form: dict[str, Any] = {k: posted.get(k, "").strip() for k in (*l7.FIELDS, "position", "rule")}
        form["path"] = posted.get("path", "")  # a path or regex is taken as typed
        form["methods"] = posted.getlist("method")
        src, dst = posted.get("source", ""), posted.get("destination", "")
        mesh, error = await run_sync(read_or_error)()
        if error or mesh is None:
            return await _topology(400, error or "cannot read the mesh", form)
        target = l7.target_of(src, dst, mesh.intentions, mesh.default_allow)
        try:
            problem = l7.edge_problem(src, dst)
            if problem:
                raise l7.L7EditError(f"{problem}; nothing written")
            refusal = await run_sync(_l7_refusal)(target.destination)
            if refusal:
                raise l7.L7EditError(f"{refusal}; nothing written")
            rules = edit(target, form)
        except (BadPermission, l7.L7EditError) as e:
            return await _topology(400, str(e), form)
        problem = await _write(lambda c: writer.set_intention(
            c, target.source, target.destination, None, None if target.current else "set from the topology", rules,
            replace=posted.get("replace") == "1", expected=target.current))
        if problem:
            return await _topology(400, problem, form)
        return _done(f"{target.source} → {target.destination}: {done}", posted.get("back", ""))

    @bp.post("/intentions/l7/add")
    async def add_l7_rule() -> Response:
        return await _l7_edit(lambda t, f: l7.with_rule(t, l7.rule_from_form(f, f["methods"])), "L7 rule added")

    @bp.post("/intentions/l7/remove")
    async def remove_l7_rule() -> Response:
        def remove(t: l7.Target, f: dict[str, Any]) -> tuple[ixn.Permission, ...]:
            if not f["position"].isdigit():
                raise l7.L7EditError(f"position: a rule number, not {f['position']!r}")
            return l7.without_rule(t, int(f["position"]), f["rule"])

        return await _l7_edit(remove, "L7 rule removed")

    @bp.get("/validations")
    async def validations() -> Response:
        """What `mesh check` says of the live mesh (live), and what `plan` says of the folder given
        to `nomadmesh ui --services` (on each page load: it asks Nomad to plan every job)."""
        mesh, error, found = await run_sync(_mesh_validations)()
        planned: list[Finding] | None = None
        plan_error: str | None = None
        if definitions is not None and request.args.get("fragment") != "1":
            planned, plan_error = await run_sync(_plan_validations)(definitions)
        return await page("validations", "validations", mesh=mesh, error=error, findings=found,
                          definitions=definitions, planned=planned, plan_error=plan_error)

    def _mesh_validations() -> tuple[model.Mesh | None, str | None, list[Finding]]:
        clients = apis()
        try:
            mesh = read.read_mesh(clients)
            return mesh, None, read.mesh_validations(clients, mesh)
        except NomadMeshError as e:
            return None, str(e), []
        finally:
            clients.close()

    def _plan_validations(folder: Definitions) -> tuple[list[Finding] | None, str | None]:
        try:
            return read.plan_validations(target_provider(), folder), None
        except NomadMeshError as e:
            return None, str(e)

    @bp.get("/events")
    async def events() -> Response:
        async def stream() -> AsyncIterator[str]:
            feed.subscribe()
            try:
                seen = feed.version
                await feed.wait_primed(READY_FALLBACK_S)
                yield "retry: 1000\nevent: ready\ndata: {}\n\n"
                seen_ready = feed.version
                if seen_ready != seen:  # something changed while priming: one refetch covers it
                    yield f"event: changed\ndata: {seen_ready}\n\n"
                seen = seen_ready
                while True:
                    now = await feed.wait_async(seen, HEARTBEAT_S)
                    if now == seen:
                        yield ": heartbeat\n\n"  # also how a closed connection is noticed
                        continue
                    seen = now
                    yield f"event: changed\ndata: {now}\n\n"
            finally:
                feed.unsubscribe()

        resp = Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        resp.timeout = None  # an event stream lasts as long as its page (Quart's default would cut it)
        return resp

    return bp


def _form_problem(form: dict[str, str]) -> str | None:
    for field in ("source", "destination"):
        if not form[field]:
            return f"{field}: required (a service name, or * for every service)"
    if form["action"] not in ixn.ACTIONS:
        return f"action: must be allow or deny, not {form['action']!r}"
    return None


def _fragment_url() -> str:
    args = request.args.to_dict()
    args.pop("notice", None)
    args["fragment"] = "1"
    return request.path + "?" + urlencode(args)

"""Service model → job files: `render(spec, fmt) -> {filename: text}`, pure and deterministic.

One Jinja environment, built once: StrictUndefined (a missing name is a bug, not an empty
string), no autoescape (this is HCL, not HTML), `[[ ]]` / `[% %]` / `[# #]` delimiters so
Nomad's `{{ }}` and HCL's `${ }` can pass through templates untouched (nomad-pack does the same),
and only the escaping filters of `hcl.py`: no template can print a raw value. `_`-prefixed
templates are partials, never rendered on their own.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Literal

import jinja2

from nomadmesh.errors import RenderError
from nomadmesh.jobspec import JobspecError, parse_hcl
from nomadmesh.render.hcl import hcl_bool, hcl_fmt, hcl_ident, hcl_int, hcl_list, hcl_string, hcl_var_path
from nomadmesh.render.view import job_view, portable
from nomadmesh.spec.model import Project, Service, Spec

Format = Literal["hcl", "json"]
FORMATS: tuple[str, ...] = ("hcl", "json")
JOB_TEMPLATE = "job.nomad.hcl.j2"


def _strict(f: Callable[[Any], str]) -> Callable[[Any], str]:
    """Make a filter fail on an undefined name with Jinja's own message ("'x' is undefined")."""

    def filtered(value: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises UndefinedError here
        return f(value)

    return filtered


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nomadmesh.render", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    # Replace Jinja's built-in filters: a template can only turn values into text through these.
    ours: dict[str, Callable[[Any], str]] = {
        "q": hcl_string,
        "qlist": hcl_list,
        "ident": hcl_ident,
        "num": hcl_int,
        "bool": hcl_bool,
        "varpath": hcl_var_path,
    }
    env.filters = {name: _strict(f) for name, f in ours.items()}
    return env


def render_hcl(service: Service, project: Project, root: str | None = None) -> str:
    """One service's job in HCL, `nomad fmt` style, ending in a newline. Paths under the project
    folder `root` are written as `${var.project_dir}/...` (see `job_variables`)."""
    template = _environment().get_template(JOB_TEMPLATE)
    try:
        text = template.render(v=job_view(service, project, root))
    except (jinja2.TemplateError, RenderError) as e:  # say which service hit it
        raise RenderError(f"{service.source}: rendering job {service.name!r} failed: {e}") from e
    return hcl_fmt(text)


def job_variables(service: Service, root: str | None) -> dict[str, str]:
    """The HCL2 variable values the service's job file needs (`-var` flags to `nomad job run`)."""
    _, names = portable(service, root)
    return {name: root for name in names if root is not None}


def render_json(service: Service, project: Project, root: str | None = None) -> str:
    """One service's job as the API's `{"Job": {...}}`: its HCL read back by the jobspec parser the
    dev agent's /v1/jobs/parse uses, so the JSON can never say something the HCL does not. Sorted
    keys, 2-space indent, newline."""
    try:
        job = parse_hcl(render_hcl(service, project, root), job_variables(service, root))
    except JobspecError as e:  # a template bug, not bad input: the HCL we wrote must parse
        raise RenderError(f"{service.source}: job {service.name!r} does not parse back: {e}") from e
    return json.dumps({"Job": job}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def select(spec: Spec, names: Sequence[str] = ()) -> tuple[Service, ...]:
    """The services called `names` (all when empty), in spec order; unknown names are an error."""
    if not names:
        return spec.services
    unknown = [n for n in dict.fromkeys(names) if n not in spec.names]
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, spec.names, n=1)
            hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        defined = ", ".join(spec.names) or "none"
        raise RenderError(f"unknown service {', '.join(hints)}; defined services: {defined}")
    wanted = set(names)
    return tuple(s for s in spec.services if s.name in wanted)


def job_filename(name: str, fmt: Format) -> str:
    return f"{name}.nomad.{fmt}"


def render(spec: Spec, fmt: Format = "hcl", names: Sequence[str] = ()) -> dict[str, str]:
    """Map `<name>.nomad.hcl` (or `.json`) to the job text for every (or every named) service."""
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    one = render_hcl if fmt == "hcl" else render_json
    return {job_filename(s.name, fmt): one(s, spec.project, spec.root) for s in select(spec, names)}

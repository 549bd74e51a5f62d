"""Service model → job files: `render(spec, fmt) -> {filename: text}`, pure and deterministic.

One Jinja environment per template folder: StrictUndefined (a missing name is a bug, not an
empty string), no autoescape (this is HCL, not HTML), `[[ ]]` / `[% %]` / `[# #]` delimiters so
Nomad's `{{ }}` and HCL's `${ }` can pass through templates untouched (nomad-pack does the same),
and only the escaping filters of `hcl.py`. Each filter marks its result as escaped (`Escaped`),
and the environment's `finalize` refuses to print anything else, so a template, built-in or the
project's own (`templates/`, which overrides built-in files by name), cannot print a raw value.
`_`-prefixed templates are partials, never rendered on their own.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2

from nomadmesh.definitions.blocks import LABELLED, not_decoded
from nomadmesh.definitions.model import Project, Service, Spec
from nomadmesh.errors import RenderError
from nomadmesh.jobspec import JobspecError
from nomadmesh.jobspec.parse_cache import ParseCache, cache_key, job_json
from nomadmesh.jobspec.schema import UNDECODED
from nomadmesh.pack import BUILTIN_DIR, DEFAULT_TEMPLATE
from nomadmesh.render.hcl import hcl_body, hcl_bool, hcl_fmt, hcl_ident, hcl_int, hcl_list, hcl_string, hcl_var_path
from nomadmesh.render.parallel import fork_map
from nomadmesh.render.view import job_view, portable_variables
from nomadmesh.user_cache import user_cache_dir

Format = Literal["hcl", "json"]
FORMATS: tuple[str, ...] = ("hcl", "json")
JOB_TEMPLATE = DEFAULT_TEMPLATE


class Escaped(str):
    """Text an escaping filter made: the only kind of value a template may print."""


def _strict(f: Callable[[Any], str]) -> Callable[[Any], str]:
    """Make a filter fail on an undefined name with Jinja's own message ("'x' is undefined"),
    and mark what it returns as escaped."""

    def filtered(value: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises UndefinedError here
        return Escaped(f(value))

    return filtered


def _only_escaped(value: Any) -> Any:
    """Jinja's `finalize`: runs on every `[[ ]]`. Anything not straight from a filter is refused
    (`[[ s.name ]]`, `[[ s.name ~ "x" ]]`, `[[ (s.name | q).lower() ]]` all give a plain str)."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # the undefined name's own message
    if not isinstance(value, Escaped):
        raise RenderError(
            f"template prints a raw value {value!r}; pass every value through a filter: q, qlist, ident, num, bool"
        )
    return value


class _QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache of compiled templates (a new process then skips compiling them: ~40 ms), on
    which a folder that cannot be written only means nothing is kept."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


@lru_cache(maxsize=1)
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates are kept by template name and source (Jinja's own key and checksum) in a
    folder named after this module's source and Jinja's version, since the compiled code also
    depends on the environment's settings made here."""
    folder = user_cache_dir()
    if folder is None:
        return None
    fingerprint = hashlib.sha256(Path(__file__).read_bytes() + jinja2.__version__.encode()).hexdigest()[:16]
    try:
        (folder / f"jinja-{fingerprint}").mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return _QuietBytecodeCache(str(folder / f"jinja-{fingerprint}"))


@lru_cache(maxsize=8)
def _environment(templates_dir: str | None = None) -> jinja2.Environment:
    builtin = jinja2.FileSystemLoader(BUILTIN_DIR)
    loader: jinja2.BaseLoader = builtin
    if templates_dir is not None:
        # The project's files first: an ejected and edited template replaces the built-in one.
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(templates_dir), builtin])
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        finalize=_only_escaped,
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
        auto_reload=templates_dir is not None,  # a project's templates may be edited between renders
        bytecode_cache=_bytecode_cache(),
    )
    # Replace Jinja's built-in filters: a template can only turn values into text through these.
    ours: dict[str, Callable[[Any], str]] = {
        "q": hcl_string,
        "qlist": hcl_list,
        "ident": hcl_ident,
        "num": hcl_int,
        "bool": hcl_bool,
        "varpath": hcl_var_path,
        "body": lambda value: hcl_body(value, LABELLED),
    }
    env.filters = {name: _strict(f) for name, f in ours.items()}
    return env


def render_hcl(service: Service, project: Project, root: str | None = None) -> str:
    """One service's job in HCL, `nomad fmt` style, ending in a newline. Paths under the project
    folder `root` are written as `${var.project_dir}/...` (see `job_variables`).

    Any template error becomes `template-file:line: service NAME: message`."""
    name = service.run.template or JOB_TEMPLATE
    try:
        template = _environment(project.templates_dir).get_template(name)
        text = template.render(v=job_view(service, project, root))
    except jinja2.TemplateNotFound as e:
        raise RenderError(f"{service.source}: nomad.template: no template {e.name!r}") from e
    except jinja2.TemplateSyntaxError as e:
        where = f"{_shown_path(e.filename or e.name or name)}:{e.lineno}"
        raise RenderError(f"{where}: service {service.name}: {e.message}") from e
    except (jinja2.TemplateError, RenderError) as e:
        raise RenderError(f"{_where(e, name)}: service {service.name}: {e}") from e
    try:
        return hcl_fmt(text)
    except RenderError as e:
        raise RenderError(f"{_shown_path(name)}: service {service.name}: {e}") from e


def _where(error: BaseException, name: str) -> str:
    """`file:line` of the innermost template frame in the error's traceback. Jinja rewrites the
    traceback so each template frame carries the template's file and line; those fake frames
    hold the exception in their globals as `__jinja_exception__`."""
    found = _shown_path(name)
    tb = error.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = f"{_shown_path(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _shown_path(path: str) -> str:
    """A template's path relative to the working folder when it is below it (shorter messages)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def job_variables(service: Service, root: str | None) -> dict[str, str]:
    """The HCL2 variable values the service's job file needs (`-var` flags to `nomad job run`)."""
    return {name: root for name in portable_variables(service, root) if root is not None}


NOT_OFFLINE = ("Nomad has it, but nomadmesh's offline jobspec parser (shared with the dev agent) does not decode "
               "it, so `render --format json` cannot show this job; `render` writes it to the HCL, `plan` and "
               "`deploy` have the target's Nomad parse it, and `nomad job run -output <file>` prints its JSON")
_UNSUPPORTED = re.compile(r'unsupported (?:block|attribute) "([^"]+)"')


def _undecoded_name(message: str) -> str | None:
    """The Nomad block a parse error is about, when it is one Nomad has and the parser does not decode."""
    m = _UNSUPPORTED.search(message)
    return m.group(1) if m is not None and m.group(1) in UNDECODED else None


def render_json(service: Service, project: Project, root: str | None = None,
                parse_cache: Path | None = None) -> str:
    """One service's job as the API's `{"Job": {...}}`: its HCL read back by the jobspec parser the
    dev agent's /v1/jobs/parse uses, so the JSON can never say something the HCL does not. Sorted
    keys, 2-space indent, newline. With `parse_cache`, a folder, parse results are kept there by
    content (jobspec/parse_cache.py) and an unchanged job is not parsed again."""
    cache = ParseCache(parse_cache) if parse_cache is not None else None
    job, missed_key = _job_json(service, project, root, cache)
    if cache is not None and missed_key is not None:
        cache.remember(service.name, missed_key, job)
        cache.save()
    return _api_body(job)


def _job_json(service: Service, project: Project, root: str | None,
              cache: ParseCache | None) -> tuple[str, str | None]:
    """The service's Job as JSON text (`pretty_json` of the parse) and, when `cache` missed, the key to
    remember it under. Only reads the cache, so it can run in a forked worker (which sends back no
    more than this); the parent remembers and saves."""
    offline = [path for level, text in service.run.blocks for path in not_decoded(level, json.loads(text))]
    if offline:
        raise RenderError("\n".join(f"{service.source}: {path}: {NOT_OFFLINE}" for path in offline))
    text, variables = render_hcl(service, project, root), job_variables(service, root)
    try:
        if cache is None:
            return job_json(text, variables), None
        key = cache_key(text, variables)
        job = cache.lookup(service.name, key)
        return (job, None) if job is not None else (job_json(text, variables), key)
    except JobspecError as e:
        name = _undecoded_name(str(e))
        if name is not None:  # a project template wrote a Nomad block the offline parser does not decode
            raise RenderError(f"{service.source}: job {service.name!r}: {name!r}: {NOT_OFFLINE}") from e
        # Otherwise a template bug, not bad input: the HCL we wrote must parse.
        raise RenderError(f"{service.source}: job {service.name!r} does not parse back: {e}") from e


def _api_body(job: str) -> str:
    """`{"Job": ...}` as `pretty_json` writes it, around the Job's own text: nested one level under
    "Job", each of its lines gains two spaces, which is exactly what dumps writes."""
    return '{\n  "Job": ' + job.replace("\n", "\n  ") + "\n}\n"


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


def render(spec: Spec, fmt: Format = "hcl", names: Sequence[str] = (),
           parse_cache: Path | None = None) -> dict[str, str]:
    """Map `<name>.nomad.hcl` (or `.json`) to the job text for every (or every named) service.
    `parse_cache`: a folder where JSON rendering keeps parse results (see `render_json`); without
    it nothing is read or written."""
    if fmt not in FORMATS:
        raise RenderError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    services = select(spec, names)
    if fmt == "hcl":
        return {job_filename(s.name, fmt): render_hcl(s, spec.project, spec.root) for s in services}
    # JSON is CPU-bound (the jobspec parse of every job): many jobs are spread over the cores.
    # The parse cache is read here, before the workers fork, and written once after they are done.
    cache = ParseCache(parse_cache) if parse_cache is not None else None
    results = fork_map(lambda s: _job_json(s, spec.project, spec.root, cache), services)
    if cache is not None:
        for service, (job, missed_key) in zip(services, results, strict=True):
            if missed_key is not None:
                cache.remember(service.name, missed_key, job)
        cache.save()
    return {job_filename(s.name, fmt): _api_body(job) for s, (job, _) in zip(services, results, strict=True)}

"""Render the service model to Nomad jobs: HCL from Jinja templates (the JSON form is that HCL parsed).

    render(spec, fmt="hcl", names=())  -> {"<name>.nomad.hcl": text}   pure
    write_jobs(rendered, out_dir)      -> [paths]                       atomic I/O
    hcl_string(value)                  -> the one escaping function for user strings in HCL
"""
from nomadmesh.render.hcl import hcl_ident, hcl_string
from nomadmesh.render.output import write_jobs
from nomadmesh.render.renderer import FORMATS, render, render_hcl, render_json

__all__ = [
    "FORMATS",
    "hcl_ident",
    "hcl_string",
    "render",
    "render_hcl",
    "render_json",
    "write_jobs",
]

"""Render the service model to Nomad jobs: HCL from Jinja templates, and the API's Job JSON.

    render(spec, fmt="hcl", names=())  -> {"<name>.nomad.hcl": text}   pure
    write_jobs(rendered, out_dir)      -> [paths]                       atomic I/O
    job_dict(service, project)         -> the Job as Nomad's HTTP API takes it
    hcl_string(value)                  -> the one escaping function for user strings in HCL
"""
from nomadmesh.render.hcl import hcl_ident, hcl_string
from nomadmesh.render.jobdict import job_dict
from nomadmesh.render.output import write_jobs
from nomadmesh.render.renderer import FORMATS, render, render_hcl, render_json

__all__ = [
    "FORMATS",
    "hcl_ident",
    "hcl_string",
    "job_dict",
    "render",
    "render_hcl",
    "render_json",
    "write_jobs",
]

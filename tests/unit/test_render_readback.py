"""hcl_to_job is strict, so the round-trip and hostile-string tests cannot pass by accident."""
from __future__ import annotations

import pytest

from nomadmesh.errors import RenderError
from nomadmesh.render import job_dict, render_hcl
from nomadmesh.render.readback import hcl_to_job, hcl_unquote
from nomadmesh.spec.model import Project, Run, Service, Upstream

SVC = Service(name="api", port=9000, source="x", tags=("t",), upstreams=(Upstream("db", 7000),),
              run=Run(command="/bin/api", env=(("A", "b"),)))
HCL = render_hcl(SVC, Project())


def test_clean_job_reads_back() -> None:
    assert hcl_to_job(HCL) == job_dict(SVC, Project())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('      driver = "raw_exec"\n', '      driver = "raw_exec"\n      user = "root"\n', "unexpected user"),
        ('  type        = "service"\n', '  type        = "service"\n  priority = 90\n', "unexpected priority"),
        ("    count = 1\n", '    count = 1\n    constraint {\n      attribute = "x"\n    }\n', "unexpected constraint"),
        ('        A    = "b"\n', '        A    = "${node.unique.id}"\n', "template sequence"),
        ('        A    = "b"\n', '        A    = "%{ if true }x%{ endif }"\n', "template sequence"),
        ("    count = 1\n", '    count = "1"\n', "expected an integer"),
        ("              local_bind_port  = 7000\n", "", "missing local_bind_port"),
        ('job "api" {', 'job "api" {\n  meta {\n    x = "y"\n  }', "more than one meta"),
    ],
)
def test_anything_extra_or_different_is_refused(old: str, new: str, message: str) -> None:
    assert old in HCL
    with pytest.raises(RenderError, match=message):
        hcl_to_job(HCL.replace(old, new, 1))


def test_a_second_job_is_refused() -> None:
    with pytest.raises(RenderError, match="exactly one job"):
        hcl_to_job(HCL + HCL.replace('job "api"', 'job "evil"'))


@pytest.mark.parametrize(
    ("raw", "value"),
    [('"a\\"b"', 'a"b'), ('"$${x}"', "${x}"), ('"%%{x}"', "%{x}"), ('"$$${x}"', "$${x}"),
     ('"\\u00e9\\U0001F600"', "é😀")],
)
def test_hcl_unquote_decodes_like_hcl(raw: str, value: str) -> None:
    assert hcl_unquote(raw) == value


@pytest.mark.parametrize("raw", ["plain", '"a\\qb"', '"\\u12"', '"a"b"'])
def test_hcl_unquote_refuses_malformed_literals(raw: str) -> None:
    with pytest.raises(RenderError):
        hcl_unquote(raw)

"""What nomadmesh renders as HCL parses back (through the agent's jobspec parser) to the same Job
as the renderer's own Job JSON, including user strings that look like HCL syntax."""
from __future__ import annotations

import json

import pytest

from nomadmesh.jobspec import canonicalize, diff, parse_hcl, validate
from support.paths import SERVICES

render = pytest.importorskip("nomadmesh.render")
model = pytest.importorskip("nomadmesh.definitions.model")

HOSTILE = 'q"uote ${NOMAD_PORT_http} $${x} %{ if } %%{y} back\\slash\nnew line é 😀'


def _services() -> list:
    m = model
    return [
        m.Service(name="tax", port=5002, source="services/tax/service.json", tags=("tax",),
                  run=m.Run(command="python3", args=("../app.py", "tax"), env=(("BIND_ADDR", "0.0.0.0"),))),
        m.Service(name="order", port=5000, source="services/order/service.json", tags=("order",),
                  upstreams=(m.Upstream("invoice", 6001),),
                  checks=(m.Check(type="http", name="health", interval="2s", timeout="1s", path="/health",
                                  expose=True),),
                  run=m.Run(command="python3", args=("../app.py", "order"), publish=0)),
        m.Service(name="invoice", port=5001, source="services/invoice/service.json", connect=False,
                  tags=(HOSTILE,), meta=(("note", HOSTILE),),
                  checks=(m.Check(type="tcp", name="tcp"),),
                  run=m.Run(command="python3", args=("../app.py", HOSTILE), env=(("WEIRD", HOSTILE),),
                            publish=5001)),
    ]


@pytest.mark.parametrize("service", _services(), ids=lambda s: s.name)
def test_rendered_json_is_the_rendered_hcl_parsed(service):
    project = model.Project()
    from_hcl = canonicalize(parse_hcl(render.render_hcl(service, project)))
    from_json = canonicalize(json.loads(render.render_json(service, project))["Job"])
    assert diff(from_json, from_hcl)["Type"] == "None"
    assert from_hcl == from_json
    assert validate(from_hcl) == []


def test_sample_services_round_trip_when_spec_loading_exists():
    spec_pkg = pytest.importorskip("nomadmesh.definitions")
    load_spec = getattr(spec_pkg, "load_spec", None)
    if load_spec is None:
        pytest.skip("nomadmesh.definitions.load_spec is not written yet")
    spec = load_spec(SERVICES)
    assert {"order", "invoice", "tax"} <= set(spec.names)
    for service in spec.services:
        from_hcl = canonicalize(parse_hcl(render.render_hcl(service, spec.project)))
        assert from_hcl["ID"] == service.name and from_hcl["TaskGroups"][0]["Name"] == service.name


def test_hostile_user_strings_survive_render_and_parse_exactly():
    service = _services()[2]
    job = parse_hcl(render.render_hcl(service, model.Project()))
    (group,) = job["TaskGroups"]
    assert group["Tasks"][0]["Env"]["WEIRD"] == HOSTILE
    assert HOSTILE in group["Tasks"][0]["Config"]["args"]
    assert group["Services"][0]["Tags"] == [HOSTILE]
    assert group["Services"][0]["Meta"] == {"note": HOSTILE}

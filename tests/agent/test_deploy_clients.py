"""One client per API (issue 11): Nomad and Consul failures read the same, whichever path made the call.

`NomadAPI` (python-nomad + raw reads) and `ConsulAPI` (py-consul + raw reads) map errors once, in
`deploy.http_api`; deploy, intent, status, logs, sidecar-for and the web UI all go through them.
Before, the UI's raw reads said `GET <url>: ConnectionError: ...`, sidecar-for `cannot read the
Consul agent at ...: HTTPConnectionPool(...)`, and Consul refusals had no status.
"""
from __future__ import annotations

import consul as consul_lib
import pytest

from nomadmesh.connect import sidecar_for
from nomadmesh.deploy.consul_api import ConsulAPI, consul_errors
from nomadmesh.deploy.http_api import refused
from nomadmesh.deploy.nomad_api import NomadAPI
from nomadmesh.deploy.target import target_from_env
from nomadmesh.errors import TargetError
from nomadmesh.ui.api import apis_for
from support.agents import RunningAgent
from support.net import free_port


def test_nothing_listening_reads_the_same_on_every_path() -> None:
    port = free_port()  # bound and released: nothing listens there
    addr = f"http://127.0.0.1:{port}"
    target = target_from_env({}, nomad_addr=addr, consul_addr=addr)
    nomad, consul = NomadAPI(target, timeout=5), ConsulAPI(target, timeout=5)
    ui = apis_for(target)
    calls = {
        "Nomad": [nomad.ping, nomad.jobs, lambda: nomad.get("/v1/allocations"), lambda: ui.nomad.get("/v1/jobs")],
        "Consul": [lambda: consul.get("/v1/catalog/services"), lambda: ui.consul.get("/v1/catalog/services"),
                   lambda: _sdk(consul, lambda c: c.catalog.services()),
                   lambda: sidecar_for.lookup(consul.sdk, "web")],
    }
    for api, fns in calls.items():
        for fn in fns:
            with pytest.raises(TargetError) as caught:
                fn()
            assert str(caught.value) == f"cannot reach {api} at {addr}: connection refused"
    ui.close()


def _sdk(api: ConsulAPI, call):  # type: ignore[no-untyped-def]
    with api.errors():
        return call(api.sdk)


def test_a_refusal_names_the_api_the_address_and_the_status(module_agent: RunningAgent) -> None:
    target = target_from_env({}, nomad_addr=module_agent.nomad_addr, consul_addr=module_agent.consul_addr)
    nomad, consul = NomadAPI(target), ConsulAPI(target)
    with pytest.raises(TargetError, match=rf"^Nomad at {module_agent.nomad_addr}: GET /v1/job/no-such-job "
                                          r"failed \(404\): job not found$"):
        nomad.get("/v1/job/no-such-job")
    with pytest.raises(TargetError, match=rf"^Consul at {module_agent.consul_addr}: GET /v1/config/no-such-kind "
                                          r"failed \(400\): "):
        consul.get("/v1/config/no-such-kind")
    refused = rf"^Consul at {module_agent.consul_addr} refused the request \(400\): "
    with pytest.raises(TargetError, match=refused), consul_errors(consul.sdk):
        consul.sdk.config.get("no-such-kind", "x")
    assert nomad.job("no-such-job") is None  # the SDK path keeps None for a job that is not there


@pytest.mark.parametrize(("status", "what", "text"), [
    (403, "GET /v1/jobs", "Nomad at http://n:4646 refused the token (GET /v1/jobs, 403): Permission denied"),
    (403, None, "Nomad at http://n:4646 refused the token (403): Permission denied"),
    (401, None, "Nomad at http://n:4646 refused the request (401): Permission denied"),
    (500, "POST /v1/jobs", "Nomad at http://n:4646: POST /v1/jobs failed (500): Permission denied"),
    (500, None, "Nomad at http://n:4646 refused the request (500): Permission denied"),
])
def test_the_one_wording(status: int, what: str | None, text: str) -> None:
    assert str(refused("Nomad", "http://n:4646", status, "Permission denied", what)) == text


def test_py_consul_acl_errors_keep_their_status() -> None:
    from nomadmesh.deploy.consul_api import translate

    assert str(translate("http://c:8500", consul_lib.ACLPermissionDenied("ACL not found\nmore"))) == \
        "Consul at http://c:8500 refused the token (403): ACL not found"
    assert str(translate("http://c:8500", consul_lib.ConsulException("500 boom"))) == \
        "Consul at http://c:8500 refused the request (500): boom"

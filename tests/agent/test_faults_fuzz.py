"""Fault 4 (issue 7): hypothesis throws malformed and half-valid input at a running agent's APIs.

Targets: Nomad's /v1/jobs/parse (HCL built from jobspec tokens, and arbitrary bodies), job plan
bodies (a dry run: nothing is scheduled), Consul service definitions, config entries, the legacy
intentions API and KV writes with odd keys, flags and CAS values. Every answer must be a client
error or success (never a 5xx, except the 500 Nomad itself gives a job that fails validation, with
its "N errors occurred:" list; EnforceIndex's documented 500 cannot arise here), never carry a Python
traceback; afterwards the agent is healthy, every read endpoint still answers JSON, and its log holds
no traceback (a malformed entry accepted into the state would break the proxy manager's later passes
and log one).
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings, strategies as st

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)
names = st.one_of(st.sampled_from(["web", "api", "*", "", "a/b", "..", "x" * 300, "ünï", "web-sidecar-proxy"]),
                  st.text(max_size=15))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, json_values)


HCL_TOKENS = ['job', 'group', 'task', 'service', 'connect', 'sidecar_service', 'network', 'port', 'config',
              'env', 'variable', 'locals', 'dynamic', 'for_each', '"web"', '"x"', '{', '}', '{', '}', '[', ']',
              '=', ',', '"', '${', '$${', '%{', 'var.x', 'local.y', '1', '-1', '1e400', 'true', 'null', '"a\\n"',
              '<<EOF\n', '\nEOF\n', '#', '//', '/*', '*/', '\n', ' ', 'count', 'driver', '"raw_exec"',
              'mode = "bridge"', 'to = 8080', 'upstreams {', 'destination_name = "db"']
hcl_text = st.one_of(st.lists(st.sampled_from(HCL_TOKENS), max_size=40).map(" ".join), st.text(max_size=200))

service_defs = st.fixed_dictionaries({}, optional={
    "Name": maybe(names), "ID": maybe(names), "Port": maybe(st.integers(-5, 70000)),
    "Address": maybe(st.text(max_size=20)),
    "Tags": maybe(st.lists(st.text(max_size=8), max_size=3)), "Meta": json_values, "Kind": maybe(
        st.sampled_from(["connect-proxy", "", "mesh-gateway", "typo"])),
    "Proxy": maybe(st.fixed_dictionaries({}, optional={
        "DestinationServiceName": maybe(names), "LocalServicePort": maybe(st.integers(-1, 70000)),
        "Upstreams": maybe(st.lists(st.fixed_dictionaries({}, optional={
            "DestinationName": maybe(names), "LocalBindPort": maybe(st.integers(-1, 70000))}), max_size=3)),
        "Config": json_values})),
    "Connect": maybe(st.fixed_dictionaries({}, optional={"SidecarService": json_values, "Native": json_values})),
    "Check": json_values, "Checks": maybe(st.lists(json_values, max_size=2)),
})
sources = st.lists(st.fixed_dictionaries({}, optional={
    "Name": maybe(names), "Action": maybe(st.sampled_from(["allow", "deny", "", "ALLOW"])),
    "Permissions": json_values, "Precedence": json_values, "Type": maybe(st.sampled_from(["consul", "x"])),
    "Description": json_values}), max_size=4)
config_entries = st.fixed_dictionaries({}, optional={
    "Kind": maybe(st.sampled_from(["service-intentions", "service-defaults", "proxy-defaults", "service-resolver",
                                   "nope"])),
    "Name": maybe(names), "Sources": maybe(sources), "Protocol": json_values, "Config": json_values,
    "Meta": json_values})
legacy_intentions = st.fixed_dictionaries({}, optional={
    "SourceName": maybe(names), "DestinationName": maybe(names),
    "Action": maybe(st.sampled_from(["allow", "deny", "x"])), "Description": json_values, "Meta": json_values})


def nomad_validation_500(resp: requests.Response) -> bool:
    """Nomad answers a job that fails validation with a 500 listing the errors (its RPC error is
    not coded), e.g. `500 (1 error occurred: * Missing job datacenters)`; the agent does the same."""
    return resp.status_code == 500 and ("error occurred:" in resp.text or "errors occurred:" in resp.text)


def consul_validation_500(resp: requests.Response, what: str) -> bool:
    """Consul answers a config entry or intention that fails its Validate rules with a 500 and the
    bare one-line reason (e.g. `Sources[0].Type must be set to 'consul'`), and so a KV acquire with
    an unknown session (`invalid session "x"`); the agent does the same. Its own failures say
    `internal error:`."""
    return (resp.status_code == 500 and any(p in what for p in ("/v1/c", "/v1/kv/", "/v1/session/"))
            and not resp.text.startswith("internal error")
            and len(resp.text.strip().splitlines()) == 1)


def check(resp: requests.Response, what: str) -> None:
    assert resp.status_code < 500 or nomad_validation_500(resp) or consul_validation_500(resp, what), \
        f"{what}: {resp.status_code} {resp.text[:500]}"
    assert "Traceback" not in resp.text, f"{what}: {resp.text[:1000]}"


def send(method: str, url: str, body: Any, **params: Any) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    resp = requests.request(method, url, data=data, params=params or None, timeout=10)
    check(resp, f"{method} {url} {data!r:.300}")
    return resp


@pytest.fixture(scope="module")
def agent(module_agent: Any) -> Any:
    yield module_agent
    # The agent survived it all: alive, answering, every read endpoint valid JSON, no traceback logged.
    assert module_agent.proc is not None and module_agent.proc.poll() is None
    for base, paths in ((module_agent.nomad_addr, ["/v1/status/leader", "/v1/jobs", "/v1/allocations"]),
                        (module_agent.consul_addr, ["/v1/agent/services", "/v1/catalog/services",
                                                    "/v1/config/service-intentions", "/v1/connect/intentions",
                                                    "/v1/kv/?recurse", "/v1/health/state/any",
                                                    "/v1/agent/connect/ca/leaf/after-fuzz"])):
        for path in paths:
            r = requests.get(base + path, timeout=10)
            # (Consul answers a KV read with no key under the prefix with a 404 and no body.)
            assert r.status_code == 200 or (path.startswith("/v1/kv/") and r.status_code == 404), \
                (path, r.status_code, r.text[:300])
            if r.status_code == 200:
                r.json()
    log = module_agent.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


@FUZZ
@given(hcl=hcl_text, canonicalize=st.booleans(), variables=st.one_of(st.none(), json_values, st.text(max_size=40)))
def test_jobs_parse_hcl(agent: Any, hcl: str, canonicalize: bool, variables: Any) -> None:
    body = {"JobHCL": hcl, "Canonicalize": canonicalize}
    if variables is not None:
        body["Variables"] = variables
    send("POST", f"{agent.nomad_addr}/v1/jobs/parse", body)


@FUZZ
@given(body=st.one_of(json_values, st.binary(max_size=100)))
def test_jobs_parse_and_plan_bodies(agent: Any, body: Any) -> None:
    send("POST", f"{agent.nomad_addr}/v1/jobs/parse", body)
    send("POST", f"{agent.nomad_addr}/v1/job/fuzz/plan", body)
    if not isinstance(body, bytes):
        send("POST", f"{agent.nomad_addr}/v1/job/fuzz/plan", {"Job": body, "Diff": True})


@FUZZ
@given(definition=service_defs, replace=st.booleans())
@example(definition={"Name": "web", "Checks": [None]}, replace=False)  # was a 500 (AttributeError)
@example(definition={"Name": "web", "Connect": {"SidecarService": {"Proxy": {"Upstreams": [None]}}}}, replace=False)
def test_service_definitions(agent: Any, definition: dict[str, Any], replace: bool) -> None:
    resp = send("PUT", f"{agent.consul_addr}/v1/agent/service/register", definition,
                **({"replace-existing-checks": "true"} if replace else {}))
    if resp.ok:
        sid = definition.get("ID") or definition.get("Name")
        if isinstance(sid, str) and sid:
            send("PUT", f"{agent.consul_addr}/v1/agent/service/deregister/{quote(sid, safe='')}", b"")


@FUZZ
@given(entry=config_entries, cas=st.one_of(st.none(), st.integers(-1, 10**6), st.text(max_size=5)))
def test_config_entries_and_intentions(agent: Any, entry: dict[str, Any], cas: Any) -> None:
    params = {} if cas is None else {"cas": cas}
    send("PUT", f"{agent.consul_addr}/v1/config", entry, **params)
    kind, name = entry.get("Kind"), entry.get("Name")
    if isinstance(kind, str) and kind and isinstance(name, str) and name:
        send("DELETE", f"{agent.consul_addr}/v1/config/{quote(kind, safe='')}/{quote(name, safe='')}", b"")


@FUZZ
@given(body=legacy_intentions)
def test_legacy_intentions_api(agent: Any, body: dict[str, Any]) -> None:
    resp = send("POST", f"{agent.consul_addr}/v1/connect/intentions", body)
    if resp.ok and isinstance(resp.json(), dict) and resp.json().get("ID"):
        send("DELETE", f"{agent.consul_addr}/v1/connect/intentions/{resp.json()['ID']}", b"")


@FUZZ
@given(key=st.text(min_size=1, max_size=30), value=st.binary(max_size=64),
       params=st.dictionaries(st.sampled_from(["cas", "flags", "acquire", "release", "recurse", "raw"]),
                              st.one_of(st.integers(-2**65, 2**65), st.text(max_size=6)), max_size=2))
def test_kv_writes(agent: Any, key: str, value: bytes, params: dict[str, Any]) -> None:
    url = f"{agent.consul_addr}/v1/kv/fuzz/{quote(key, safe='/')}"
    send("PUT", url, value, **params)
    send("GET", url, b"", **{k: v for k, v in params.items() if k in ("recurse", "raw")})
    send("DELETE", url, b"", **{k: v for k, v in params.items() if k in ("cas", "recurse")})

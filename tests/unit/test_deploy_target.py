"""Target selection follows the HashiCorp CLIs' environment variables (pure; no network)."""
from __future__ import annotations

import pytest

from nomadmesh.deploy.target import consul_client, nomad_client, target_from_env
from nomadmesh.errors import TargetError


def test_defaults_are_the_agents_own_loopback_ports() -> None:
    t = target_from_env({})
    assert (t.nomad.url, t.consul.url) == ("http://127.0.0.1:4646", "http://127.0.0.1:8500")
    assert t.nomad.token is None and t.namespace is None


def test_environment_is_read_like_the_hashicorp_clis() -> None:
    t = target_from_env({
        "NOMAD_ADDR": "https://nomad.internal:4647", "NOMAD_TOKEN": "n-tok", "NOMAD_NAMESPACE": "apps",
        "NOMAD_REGION": "eu", "NOMAD_CACERT": "/ca.pem", "NOMAD_SKIP_VERIFY": "true",
        "CONSUL_HTTP_ADDR": "consul.internal:8501", "CONSUL_HTTP_SSL": "true", "CONSUL_HTTP_TOKEN": "c-tok",
        "CONSUL_CLIENT_CERT": "/c.pem", "CONSUL_CLIENT_KEY": "/k.pem",
    })
    assert t.nomad.url == "https://nomad.internal:4647" and t.nomad.token == "n-tok"
    assert t.nomad.requests_verify is False  # NOMAD_SKIP_VERIFY
    assert (t.namespace, t.region) == ("apps", "eu")
    assert t.consul.url == "https://consul.internal:8501" and t.consul.token == "c-tok"
    assert t.consul.requests_cert == ("/c.pem", "/k.pem")


def test_options_override_the_environment() -> None:
    t = target_from_env({"NOMAD_ADDR": "http://a:1"}, nomad_addr="http://127.0.0.1:9999")
    assert t.nomad.url == "http://127.0.0.1:9999"


@pytest.mark.parametrize("addr", ["ftp://x:1", "http://:80", "http://h:notaport"])
def test_bad_address_names_the_variable(addr: str) -> None:
    with pytest.raises(TargetError, match="NOMAD_ADDR"):
        target_from_env({"NOMAD_ADDR": addr})


def test_clients_carry_address_and_token() -> None:
    t = target_from_env({"CONSUL_HTTP_ADDR": "127.0.0.1:18500", "NOMAD_TOKEN": "secret"})
    assert consul_client(t).http.base_uri == "http://127.0.0.1:18500"
    assert nomad_client(t).get_token() == "secret"

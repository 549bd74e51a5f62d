"""Consul's CA configuration on the dev agent over HTTP with py-consul: defaults, TTL-only updates
(no new root), root rotation (new root cross-signed by the old one, both served, leaves re-signed and
chained through the cross-signed certificate, blocking queries woken, kept across a restart), an
operator-supplied root, and Consul's refusals."""
from __future__ import annotations

import datetime as dt
import json
import stat
import threading
from collections.abc import Callable
from typing import Any

import consul
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.agents import RunningAgent

URL = "/v1/connect/ca/configuration"


def _client(agent: RunningAgent) -> consul.Consul:
    return consul.Consul(host="127.0.0.1", port=agent.consul_port)


def _chain(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def test_defaults_and_a_ttl_only_update_keep_the_root(module_agent: RunningAgent) -> None:
    c = _client(module_agent)
    cfg = c.connect.ca.configuration()
    assert cfg["Provider"] == "consul"
    assert cfg["Config"]["LeafCertTTL"] == "72h" and cfg["Config"]["IntermediateCertTTL"] == "8760h"
    assert cfg["Config"]["RotationPeriod"] == "2160h" and cfg["Config"]["PrivateKeyBits"] == 256
    root_before = c.connect.ca.roots()["ActiveRootID"]
    assert c.connect.ca.update_configuration("consul", {"LeafCertTTL": "24h"}) is True
    cfg = c.connect.ca.configuration()
    assert cfg["Config"]["LeafCertTTL"] == "24h" and cfg["ModifyIndex"] > 1
    assert c.connect.ca.roots()["ActiveRootID"] == root_before
    [leaf] = _chain(c.agent.connect.ca.leaf("ttl-svc")["CertPEM"])
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(hours=24, minutes=1)
    c.connect.ca.update_configuration("consul", {})  # back to the defaults for the other tests


def test_rotation_serves_both_roots_and_cross_signs_the_new_one(agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory()
    c = _client(agent)
    old = c.connect.ca.roots()
    [old_root] = old["Roots"]
    leaf_before = c.agent.connect.ca.leaf("web")
    woken: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: woken.update(leaf=requests.get(
        f"{agent.consul_addr}/v1/agent/connect/ca/leaf/web",
        params={"index": leaf_before["ModifyIndex"], "wait": "30s"}, timeout=40).json()))
    waiter.start()

    assert c.connect.ca.update_configuration("consul", {"PrivateKeyBits": 384}) is True
    roots = c.connect.ca.roots()
    assert roots["ActiveRootID"] != old["ActiveRootID"] and roots["TrustDomain"] == old["TrustDomain"]
    active, previous = roots["Roots"]
    assert (active["ID"], active["Active"], active["PrivateKeyBits"]) == (roots["ActiveRootID"], True, 384)
    assert (previous["ID"], previous["Active"]) == (old_root["ID"], False)
    new_root = x509.load_pem_x509_certificate(active["RootCert"].encode())
    old_cert = x509.load_pem_x509_certificate(old_root["RootCert"].encode())
    [cross] = [x509.load_pem_x509_certificate(p.encode()) for p in active["IntermediateCerts"]]
    cross.verify_directly_issued_by(old_cert)  # the old root vouches for the new key
    assert cross.subject == new_root.subject and cross.public_key() == new_root.public_key()

    waiter.join(timeout=40)
    assert woken["leaf"]["SerialNumber"] != leaf_before["SerialNumber"]  # the blocking query woke
    leaf, chained_cross = _chain(c.agent.connect.ca.leaf("web")["CertPEM"])
    leaf.verify_directly_issued_by(new_root)
    assert chained_cross == cross  # a peer trusting only the old root still reaches it
    pem = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", params={"pem": "true"}, timeout=10).text
    assert _chain(pem) == [new_root, old_cert]
    assert stat.S_IMODE((agent.data_dir / "connect" / "root.key").stat().st_mode) == 0o600

    # Rotate once more; then, the agent stopped, let the first root's rotation lie a week back
    # (> 2 x the 72 h leaf TTL) as if that time had passed: at start the agent keeps what it was
    # given (the active root, the one just rotated out, the configuration) and prunes the first root
    # (Consul's pruneCARoots).
    assert c.connect.ca.update_configuration("consul", {"PrivateKeyBits": 256}) is True
    third = c.connect.ca.roots()
    assert [r["ID"] for r in third["Roots"]][1:] == [active["ID"], previous["ID"]]
    agent.stop()
    times = agent.data_dir / "connect" / "rotated-out.json"
    week_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    times.write_text(json.dumps({**json.loads(times.read_text()), previous["ID"]: week_ago}))
    agent.start()
    again = _client(agent).connect.ca.roots()
    assert [r["ID"] for r in again["Roots"]] == [third["ActiveRootID"], active["ID"]]  # the recent one stays
    assert _client(agent).connect.ca.configuration()["Config"]["PrivateKeyBits"] == 256
    pem = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", params={"pem": "true"}, timeout=10).text
    assert old_cert not in _chain(pem)


def _operator_root(cluster_hint: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"operator root {cluster_hint}")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_an_operator_supplied_root_becomes_active_and_is_never_shown_back(
        agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory()
    c = _client(agent)
    key_pem, cert_pem = _operator_root("x")
    assert c.connect.ca.update_configuration("consul", {"PrivateKey": key_pem, "RootCert": cert_pem}) is True
    roots = c.connect.ca.roots()
    assert roots["Roots"][0]["RootCert"].strip() == cert_pem.strip() and len(roots["Roots"]) == 2
    leaf = _chain(c.agent.connect.ca.leaf("api")["CertPEM"])[0]
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(cert_pem.encode()))
    cfg = c.connect.ca.configuration()["Config"]
    assert "PrivateKey" not in cfg and cfg["RootCert"] == cert_pem
    agent.restart(kill=False)  # a root without the spiffe SAN still loads after a restart
    assert _client(agent).connect.ca.roots()["ActiveRootID"] == roots["ActiveRootID"]


@pytest.mark.parametrize("body, status, message", [
    ({"Provider": "consul", "Config": {"LeafCertTTL": "30m"}}, 500,
     "leaf cert TTL must be greater or equal than 1h0m0s"),
    ({"Provider": "consul", "Config": {"LeafCertTTL": "9000h", "IntermediateCertTTL": "30000h"}}, 500,
     "leaf cert TTL must be less than 8760h0m0s"),
    ({"Provider": "consul", "Config": {"LeafCertTTL": "72h", "IntermediateCertTTL": "100h"}}, 500,
     "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=216h0m0s)."),
    ({"Provider": "consul", "Config": {"RootCertTTL": "100h"}}, 500,
     "root cert TTL is set and is not greater than intermediate cert ttl."),
    ({"Provider": "consul", "Config": {"PrivateKeyBits": 512}}, 500,
     "EC key length must be one of (224, 256, 384, 521) bits"),
    ({"Provider": "consul", "Config": {"PrivateKeyType": "dsa"}}, 500, "private key type must be either 'ec' or 'rsa'"),
    ({"Provider": "consul", "Config": {"PrivateKeyType": "rsa", "PrivateKeyBits": 2048}}, 500, "only \"ec\""),
    ({"Provider": "vault", "Config": {}}, 500, 'CA provider "vault" is not available on the dev agent'),
    ({"Provider": "consul", "Config": {"PrivateKey": "-----BEGIN nothing"}}, 500,
     "must provide both PrivateKey and RootCert"),
])
def test_refused_configurations_change_nothing(module_agent: RunningAgent, body: dict[str, Any], status: int,
                                               message: str) -> None:
    before = requests.get(f"{module_agent.consul_addr}{URL}", timeout=10).json()
    r = requests.put(f"{module_agent.consul_addr}{URL}", json=body, timeout=10)
    assert r.status_code == status and message in r.text
    assert requests.get(f"{module_agent.consul_addr}{URL}", timeout=10).json() == before


def test_a_malformed_body_is_a_decode_error(module_agent: RunningAgent) -> None:
    r = requests.put(f"{module_agent.consul_addr}{URL}", data=b"{not json", timeout=10)
    assert r.status_code == 400 and r.text.startswith("Request decode failed")


def test_a_blocking_roots_query_returns_with_the_rotated_root(agent_factory: Callable[..., RunningAgent]) -> None:
    agent = agent_factory()
    first = requests.get(f"{agent.consul_addr}/v1/connect/ca/roots", timeout=10)
    index = int(first.headers["X-Consul-Index"])
    answer: dict[str, Any] = {}

    def wait() -> None:
        r = requests.get(f"{agent.consul_addr}/v1/agent/connect/ca/roots",
                         params={"index": index, "wait": "30s"}, timeout=40)
        answer.update(index=int(r.headers["X-Consul-Index"]), body=r.json())
    waiter = threading.Thread(target=wait)
    waiter.start()
    _client(agent).connect.ca.update_configuration("consul", {"PrivateKeyBits": 384})
    waiter.join(timeout=40)
    assert answer["index"] > index
    assert answer["body"]["ActiveRootID"] != first.json()["ActiveRootID"]

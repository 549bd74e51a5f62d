"""The Connect CA: identities, key usage, validity, chains, persistence, rotation, Consul's JSON."""
from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from nomadmesh.agent.connect.ca import CERT_FILE, KEY_FILE, ConnectCA, leaf_json, leaf_needs_rotation, roots_json
from nomadmesh.errors import AgentError

CID = "0e5b5c9a-1111-2222-3333-444455556666"
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca() -> ConnectCA:
    return ConnectCA.generate(CID, now=T0)


def _uris(cert: x509.Certificate) -> list[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def test_root_is_an_ec_p256_ca_for_the_trust_domain(ca: ConnectCA) -> None:
    cert = ca.root_cert
    assert ca.trust_domain == f"{CID}.consul"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (ku.key_cert_sign, ku.crl_sign, ku.digital_signature) == (True, True, True)
    assert _uris(cert) == [f"spiffe://{CID}.consul"]
    assert cert.issuer == cert.subject
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= dt.timedelta(days=3650)


def test_leaf_has_the_spiffe_id_key_usage_and_72h_validity(ca: ConnectCA) -> None:
    leaf = ca.sign_leaf("web", "zone1", now=T0)
    cert = leaf.cert
    assert _uris(cert) == [f"spiffe://{CID}.consul/ns/default/dc/zone1/svc/web"]
    assert leaf.service_uri == _uris(cert)[0]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (ku.digital_signature, ku.key_encipherment, ku.data_encipherment, ku.key_agreement) == (
        True, True, True, True)
    assert ku.key_cert_sign is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_before_utc == T0 - dt.timedelta(minutes=1)
    assert cert.not_valid_after_utc == T0 + dt.timedelta(hours=72)


def test_leaves_of_one_root_share_its_template_but_nothing_of_each_other(ca: ConnectCA) -> None:
    """sign_leaf extends one prebuilt builder per root: each leaf still has its own key, subject,
    SAN and key identifier, the root's authority key identifier, and the extensions in one order."""
    web, api = ca.sign_leaf("web", "dc1", now=T0), ca.sign_leaf("api", "dc1", now=T0)
    order = [x509.BasicConstraints, x509.KeyUsage, x509.ExtendedKeyUsage, x509.SubjectKeyIdentifier,
             x509.AuthorityKeyIdentifier, x509.SubjectAlternativeName]
    root_ski = ca.root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    for leaf, name in ((web, "web"), (api, "api")):
        cert = leaf.cert
        assert [type(e.value) for e in cert.extensions] == order
        assert cert.subject.rfc4514_string() == f"CN={name}"
        assert _uris(cert) == [f"spiffe://{CID}.consul/ns/default/dc/dc1/svc/{name}"]
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == root_ski
    assert web.cert.public_key() != api.cert.public_key() and web.key_pem != api.key_pem


def test_leaf_ttl_is_configurable_within_consuls_range() -> None:
    short = ConnectCA.generate(CID, leaf_ttl=dt.timedelta(hours=2))
    leaf = short.sign_leaf("web", "dc1", now=T0)
    assert leaf.cert.not_valid_after_utc == T0 + dt.timedelta(hours=2)
    with pytest.raises(AgentError, match="leaf TTL"):
        ConnectCA.generate(CID, leaf_ttl=dt.timedelta(minutes=5))


def test_leaf_chain_verifies_against_the_root_and_not_another(ca: ConnectCA) -> None:
    leaf = ca.sign_leaf("web", "dc1")
    verifier = (verification.PolicyBuilder().store(verification.Store([ca.root_cert]))
                .build_client_verifier())
    verified = verifier.verify(leaf.cert, [])
    assert verified.chain[-1] == ca.root_cert
    assert ca.issued(leaf.cert)
    other = ConnectCA.generate(CID)
    assert not other.issued(leaf.cert)
    with pytest.raises(verification.VerificationError):
        (verification.PolicyBuilder().store(verification.Store([other.root_cert]))
         .build_client_verifier().verify(leaf.cert, []))


def test_root_is_persisted_with_a_0600_key_and_reloaded(tmp_path: Path) -> None:
    first = ConnectCA.load_or_create(tmp_path / "ca", CID)
    key_mode = stat.S_IMODE(os.stat(tmp_path / "ca" / KEY_FILE).st_mode)
    assert key_mode == 0o600
    assert not [p for p in (tmp_path / "ca").iterdir() if p.name.startswith(".")]  # no temp files left
    leaf = first.sign_leaf("web", "dc1")
    again = ConnectCA.load_or_create(tmp_path / "ca")  # restart: no cluster id needed
    assert again.root_id == first.root_id
    assert again.trust_domain == first.trust_domain
    assert again.issued(leaf.cert)  # leaves issued before a restart stay valid


def test_reload_refuses_a_different_cluster_or_half_a_root(tmp_path: Path) -> None:
    ConnectCA.load_or_create(tmp_path, CID)
    with pytest.raises(AgentError, match="belongs to cluster"):
        ConnectCA.load_or_create(tmp_path, "another-cluster")
    (tmp_path / CERT_FILE).unlink()
    with pytest.raises(AgentError, match=f"{CERT_FILE}: missing"):
        ConnectCA.load_or_create(tmp_path)
    (tmp_path / CERT_FILE).write_text("junk")
    with pytest.raises(AgentError, match="not a PEM certificate"):
        ConnectCA.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).write_text("junk")
    with pytest.raises(AgentError, match=f"{KEY_FILE}: not a PEM private key"):
        ConnectCA.load_or_create(tmp_path)


def test_rotation_happens_between_60_and_90_percent_of_life_or_on_a_new_root(ca: ConnectCA) -> None:
    leaves = [ca.sign_leaf("web", "dc1", now=T0) for _ in range(20)]
    life = dt.timedelta(hours=72, minutes=1)
    start = T0 - dt.timedelta(minutes=1)
    for leaf in leaves:
        assert not leaf_needs_rotation(leaf.cert, start + life * 0.59, ca)
        assert leaf_needs_rotation(leaf.cert, start + life * 0.9)
    # the soft expiry is spread, not one instant for every leaf
    at_75 = [leaf_needs_rotation(leaf.cert, start + life * 0.75) for leaf in leaves]
    assert any(at_75) and not all(at_75)
    other = ConnectCA.generate(CID)
    assert leaf_needs_rotation(leaves[0].cert, T0, other)


def test_roots_and_leaf_json_have_consuls_fields(ca: ConnectCA) -> None:
    roots = roots_json(ca, index=7)
    assert roots["ActiveRootID"] == ca.root_id
    assert roots["TrustDomain"] == f"{CID}.consul"
    (root,) = roots["Roots"]
    for key in ("ID", "Name", "SerialNumber", "SigningKeyID", "RootCert", "IntermediateCerts",
                "Active", "NotBefore", "NotAfter", "CreateIndex", "ModifyIndex"):
        assert key in root
    assert root["Active"] is True and root["ModifyIndex"] == 7
    assert 0 < root["SerialNumber"] < 2**64
    assert x509.load_pem_x509_certificate(root["RootCert"].encode()) == ca.root_cert
    assert root["ID"].count(":") == 19  # colon-hex SHA-1 fingerprint, like Consul

    leaf = ca.sign_leaf("web", "dc1", now=T0)
    body = leaf_json(leaf, index=9)
    assert body["Service"] == "web"
    assert body["ServiceURI"] == f"spiffe://{CID}.consul/ns/default/dc/dc1/svc/web"
    assert body["ValidAfter"] == "2026-03-01T11:59:00Z"
    assert body["ValidBefore"] == "2026-03-04T12:00:00Z"
    assert int(body["SerialNumber"].replace(":", ""), 16) == leaf.cert.serial_number
    assert x509.load_pem_x509_certificate(body["CertPEM"].encode()) == leaf.cert
    assert "PRIVATE KEY" in body["PrivateKeyPEM"]
    assert (body["CreateIndex"], body["ModifyIndex"]) == (9, 9)


def test_a_rotated_out_root_is_pruned_after_twice_the_leaf_ttl_and_the_time_is_persisted(tmp_path: Path) -> None:
    """Consul's pruneCARoots: an inactive root goes once it has been out for 2 x LeafCertTTL (no leaf
    it signed can still be valid), not before; when it went out survives a restart."""
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = ConnectCA.generate("c1d2e3f4-0000-4000-8000-000000000001", now=t0)
    second = first.rotated_to(ConnectCA.generate(first.cluster_id, now=t0), now=t0)
    third = second.rotated_to(ConnectCA.generate(first.cluster_id), now=t0 + dt.timedelta(hours=100))
    assert third.previous_roots == (second.root_cert, first.root_cert)
    assert third.pruned(t0 + 2 * third.leaf_ttl) is third  # exactly 2 x TTL: still kept
    kept = third.pruned(t0 + 2 * third.leaf_ttl + dt.timedelta(seconds=1))
    assert kept.previous_roots == (second.root_cert,) and kept.root_cert == third.root_cert
    assert [r["ID"] for r in roots_json(kept)["Roots"]] == [third.root_id, second.root_id]
    third.save(tmp_path)
    again = ConnectCA.load_or_create(tmp_path, first.cluster_id)
    assert again.rotated_out_at == (t0 + dt.timedelta(hours=100), t0)
    assert again.pruned(t0 + dt.timedelta(hours=300)).previous_roots == ()

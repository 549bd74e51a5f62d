"""The Connect CA: an EC P-256 root persisted on disk, SPIFFE leaf certificates, Consul's JSON.

Shapes follow Consul's built-in CA (consul-nomad-facts §5):

* root: self-signed, CA:true, KeyUsage CertSign|CRLSign|DigitalSignature, URI SAN `spiffe://<td>`,
  valid 10 years (Consul's RootCertTTL 87600h);
* leaf: valid from now - 1 min (clock skew) for the TTL (72 h by default), KeyUsage
  DigitalSignature|KeyEncipherment|DataEncipherment|KeyAgreement, ExtKeyUsage ClientAuth+ServerAuth,
  URI SAN `spiffe://<td>/ns/default/dc/<dc>/svc/<name>`.

`ConnectCA.load_or_create(directory, cluster_id)` is the only I/O: it writes `root.key` (mode 0600)
and `root.pem` atomically the first time and reads them back afterwards, so the trust domain and
every issued leaf stay valid across agent restarts. Everything else is a pure function.
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nomadmesh.agent.connect import identity
from nomadmesh.errors import AgentError

DEFAULT_LEAF_TTL = dt.timedelta(hours=72)
MIN_LEAF_TTL = dt.timedelta(hours=1)  # Consul's allowed range for LeafCertTTL: 1h..8760h
MAX_LEAF_TTL = dt.timedelta(hours=8760)
ROOT_TTL = dt.timedelta(hours=87600)
CLOCK_SKEW = dt.timedelta(minutes=1)
ROOT_NAME = "Consul CA Primary Cert"
KEY_FILE = "root.key"
CERT_FILE = "root.pem"

# Consul renews a leaf at a random point between 60 % and 90 % of its lifetime so that a fleet of
# proxies does not renew at once; we derive that point from the serial so the decision is pure.
ROTATE_FROM, ROTATE_TO = 0.6, 0.9


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Leaf:
    """A signed leaf certificate with its private key."""

    service: str
    service_uri: str
    cert: x509.Certificate
    cert_pem: str
    key_pem: str

    @property
    def serial_hex(self) -> str:
        return _colon_hex(self.cert.serial_number.to_bytes(20, "big").lstrip(b"\0") or b"\0")


def _key_usage(*enabled: str) -> x509.KeyUsage:
    """A KeyUsage with exactly the named bits set (cryptography wants all nine spelled out)."""
    bits = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    unknown = set(enabled) - set(bits)
    if unknown:
        raise ValueError(f"unknown key usage bits: {sorted(unknown)}")
    return x509.KeyUsage(**{bit: bit in enabled for bit in bits})


@dataclass(frozen=True)
class ConnectCA:
    """An active root (certificate + key) and the trust domain it vouches for."""

    cluster_id: str
    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    leaf_ttl: dt.timedelta = DEFAULT_LEAF_TTL

    def __post_init__(self) -> None:
        if not MIN_LEAF_TTL <= self.leaf_ttl <= MAX_LEAF_TTL:
            raise AgentError(f"connect CA: leaf TTL {self.leaf_ttl} outside Consul's range 1h..8760h")

    # --- identity ---------------------------------------------------------------------------
    @property
    def trust_domain(self) -> str:
        return identity.trust_domain(self.cluster_id)

    @property
    def root_pem(self) -> str:
        return _pem(self.root_cert)

    @property
    def root_id(self) -> str:
        """Consul's root ID: the colon-hex SHA-1 fingerprint of the certificate."""
        return _colon_hex(self.root_cert.fingerprint(hashes.SHA1()))

    @property
    def signing_key_id(self) -> str:
        ski = self.root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return _colon_hex(ski.value.digest)

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def generate(cls, cluster_id: str, leaf_ttl: dt.timedelta = DEFAULT_LEAF_TTL,
                 now: dt.datetime | None = None) -> ConnectCA:
        now = now or _now()
        key = ec.generate_private_key(ec.SECP256R1())
        td = identity.trust_domain(cluster_id)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pri-{cluster_id[:8]}.consul.ca")])
        pub = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(pub)
            # a positive serial that fits Consul's uint64 SerialNumber field
            .serial_number(int.from_bytes(os.urandom(8), "big") >> 1 or 1)
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ROOT_TTL)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pub), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.root_uri(td))]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cluster_id=cluster_id, root_cert=cert, root_key=key, leaf_ttl=leaf_ttl)

    @classmethod
    def load_or_create(cls, directory: Path, cluster_id: str | None = None,
                       leaf_ttl: dt.timedelta = DEFAULT_LEAF_TTL) -> ConnectCA:
        """Load the root from `directory`, or create and persist one there.

        The trust domain is bound to the persisted root: a `cluster_id` that disagrees with the
        stored one is an error rather than a silent re-key that would invalidate every leaf.
        """
        directory = Path(directory)
        key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
        if key_path.exists() or cert_path.exists():
            ca = _load(key_path, cert_path, leaf_ttl)
            if cluster_id is not None and cluster_id != ca.cluster_id:
                raise AgentError(
                    f"{cert_path}: root belongs to cluster {ca.cluster_id}, not {cluster_id}"
                )
            return ca
        ca = cls.generate(cluster_id or str(uuid.uuid4()), leaf_ttl)
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(key_path, _key_pem(ca.root_key).encode(), 0o600)
        _write_atomic(cert_path, ca.root_pem.encode(), 0o644)
        return ca

    # --- signing ----------------------------------------------------------------------------
    def sign_leaf(self, service: str, datacenter: str, now: dt.datetime | None = None,
                  ttl: dt.timedelta | None = None) -> Leaf:
        now = now or _now()
        ttl = ttl or self.leaf_ttl
        key = ec.generate_private_key(ec.SECP256R1())
        uri = identity.service_uri(self.trust_domain, datacenter, service)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .issuer_name(self.root_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ttl)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage("digital_signature", "key_encipherment", "data_encipherment", "key_agreement"),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                           critical=False)
            .sign(self.root_key, hashes.SHA256())
        )
        return Leaf(service=service, service_uri=uri, cert=cert, cert_pem=_pem(cert),
                    key_pem=_key_pem(key))

    def issued(self, cert: x509.Certificate) -> bool:
        """True if `cert` was signed by this root."""
        try:
            cert.verify_directly_issued_by(self.root_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


def leaf_needs_rotation(cert: x509.Certificate, now: dt.datetime | None = None,
                        ca: ConnectCA | None = None) -> bool:
    """Whether a leaf should be replaced now (Consul-like soft expiry).

    True once `now` passes a point between 60 % and 90 % of the certificate's lifetime (the
    point is derived from the serial, spreading renewals like Consul's random jitter), or when
    `ca` is given and did not sign it (the root changed).
    """
    now = now or _now()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    jitter = (cert.serial_number % 1000) / 1000
    soft = start + (end - start) * (ROTATE_FROM + (ROTATE_TO - ROTATE_FROM) * jitter)
    if now >= soft:
        return True
    return ca is not None and not ca.issued(cert)


# --- Consul's JSON --------------------------------------------------------------------------


def roots_json(ca: ConnectCA, index: int = 1) -> dict[str, Any]:
    """The body of `/v1/connect/ca/roots` (and `/v1/agent/connect/ca/roots`)."""
    cert = ca.root_cert
    return {
        "ActiveRootID": ca.root_id,
        "TrustDomain": ca.trust_domain,
        "Roots": [
            {
                "ID": ca.root_id,
                "Name": ROOT_NAME,
                "SerialNumber": cert.serial_number,
                "SigningKeyID": ca.signing_key_id,
                "ExternalTrustDomain": ca.cluster_id,
                "NotBefore": _rfc3339(cert.not_valid_before_utc),
                "NotAfter": _rfc3339(cert.not_valid_after_utc),
                "RootCert": ca.root_pem,
                "IntermediateCerts": None,
                "Active": True,
                "PrivateKeyType": "ec",
                "PrivateKeyBits": 256,
                "CreateIndex": index,
                "ModifyIndex": index,
            }
        ],
    }


def leaf_json(leaf: Leaf, index: int = 1) -> dict[str, Any]:
    """The body of `/v1/agent/connect/ca/leaf/:service`."""
    return {
        "SerialNumber": leaf.serial_hex,
        "CertPEM": leaf.cert_pem,
        "PrivateKeyPEM": leaf.key_pem,
        "Service": leaf.service,
        "ServiceURI": leaf.service_uri,
        "ValidAfter": _rfc3339(leaf.cert.not_valid_before_utc),
        "ValidBefore": _rfc3339(leaf.cert.not_valid_after_utc),
        "CreateIndex": index,
        "ModifyIndex": index,
    }


# --- persistence ----------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file in the same directory + rename, so a crash never leaves half a key."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)  # before any byte is written: the key is never world-readable
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(key_path: Path, cert_path: Path, leaf_ttl: dt.timedelta) -> ConnectCA:
    for p in (key_path, cert_path):
        if not p.exists():
            raise AgentError(f"{p}: missing (the CA directory holds only half a root)")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise AgentError(f"{key_path}: not a PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AgentError(f"{key_path}: not an EC private key")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError as exc:
        raise AgentError(f"{cert_path}: not a PEM certificate ({exc})") from None
    cert_key = cert.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey) \
            or cert_key.public_numbers() != key.public_key().public_numbers():
        raise AgentError(f"{cert_path}: does not match the key in {key_path}")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uri = san.value.get_values_for_type(x509.UniformResourceIdentifier)[0]
    except (x509.ExtensionNotFound, IndexError):
        raise AgentError(f"{cert_path}: root has no spiffe:// URI SAN") from None
    td = uri.removeprefix("spiffe://")
    if not td.endswith(".consul") or td == uri:
        raise AgentError(f"{cert_path}: URI SAN {uri!r} is not spiffe://<cluster-id>.consul")
    return ConnectCA(cluster_id=td.removesuffix(".consul"), root_cert=cert, root_key=key,
                     leaf_ttl=leaf_ttl)

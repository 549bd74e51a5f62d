"""The Connect CA: an EC P-256 root persisted on disk, SPIFFE leaf certificates, Consul's JSON.

Shapes follow Consul's built-in CA (consul-nomad-facts §5):

* root: self-signed, CA:true, KeyUsage CertSign|CRLSign|DigitalSignature, URI SAN `spiffe://<td>`,
  valid 10 years (Consul's RootCertTTL 87600h);
* leaf: valid from now - 1 min (clock skew) for the TTL (72 h by default), KeyUsage
  DigitalSignature|KeyEncipherment|DataEncipherment|KeyAgreement, ExtKeyUsage ClientAuth+ServerAuth,
  URI SAN `spiffe://<td>/ns/default/dc/<dc>/svc/<name>`.

Root rotation (`rotated_to`, Consul's CA configuration update): the old root cross-signs the new
one; leaves signed by the new root carry that cross-signed certificate after them, so a peer that
trusts only the old root still accepts them, and the old root stays in the trust bundle (inactive)
so leaves it signed stay valid until they are replaced. A rotated-out root is pruned (`pruned`)
once it has been out for twice the leaf TTL, as Consul's leader does (pruneCARoots): by then no
leaf it signed can still be valid.

`ConnectCA.load_or_create(directory, cluster_id)` and `save(directory)` are the only I/O: `root.key`
(mode 0600), `root.pem`, and after a rotation `previous-roots.pem`, `rotated-out.json` (when each
was rotated out) and `intermediates.pem`, each written atomically, so the trust domain and every
issued leaf stay valid across agent restarts. Everything else is a pure function.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
import tempfile
import uuid
from dataclasses import dataclass, replace
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
PREVIOUS_FILE = "previous-roots.pem"  # roots rotated out, still trusted
ROTATED_OUT_FILE = "rotated-out.json"  # {root ID: when it was rotated out (RFC 3339)}
INTERMEDIATES_FILE = "intermediates.pem"  # the active root cross-signed by the previous one
CURVES: dict[int, type[ec.EllipticCurve]] = {
    224: ec.SECP224R1, 256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}  # Consul's EC sizes

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
    intermediates: tuple[x509.Certificate, ...] = ()  # sent after each leaf (the cross-signed root)
    previous_roots: tuple[x509.Certificate, ...] = ()  # rotated out, still in the trust bundle
    rotated_out_at: tuple[dt.datetime, ...] = ()  # when each previous root was rotated out (Consul's RotatedOutAt)

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
        return root_id(self.root_cert)

    @property
    def trust_bundle_pem(self) -> str:
        """Every root a peer's certificate may chain to: the active one, then the rotated-out ones."""
        return "".join(_pem(c) for c in (self.root_cert, *self.previous_roots))

    @property
    def key_bits(self) -> int:
        return self.root_key.curve.key_size

    @property
    def signing_key_id(self) -> str:
        ski = self.root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return _colon_hex(ski.value.digest)

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def generate(cls, cluster_id: str, leaf_ttl: dt.timedelta = DEFAULT_LEAF_TTL,
                 now: dt.datetime | None = None, key_bits: int = 256) -> ConnectCA:
        now = now or _now()
        key = ec.generate_private_key(CURVES[key_bits]())
        td = identity.trust_domain(cluster_id)
        # Consul's naming: unique per root, so two roots of one cluster never share a subject.
        name = x509.Name([x509.NameAttribute(
            NameOID.COMMON_NAME, f"pri-{os.urandom(4).hex()}.consul.ca.{cluster_id[:8]}.consul")])
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
            ca = _load(key_path, cert_path, leaf_ttl, cluster_id)
            if cluster_id is not None and cluster_id != ca.cluster_id:
                raise AgentError(
                    f"{cert_path}: root belongs to cluster {ca.cluster_id}, not {cluster_id}"
                )
            return ca
        ca = cls.generate(cluster_id or str(uuid.uuid4()), leaf_ttl)
        ca.save(directory)
        return ca

    def save(self, directory: Path) -> None:
        """Persist the root (its key 0600) and, after a rotation, the previous roots and intermediates.

        The certificates go first and the key last: a crash in between leaves the old key with the
        old root file replaced, which load refuses (key and certificate do not match) rather than
        silently trusting the wrong root."""
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(directory / PREVIOUS_FILE, "".join(_pem(c) for c in self.previous_roots).encode(), 0o644)
        rotated = {root_id(c): _rfc3339(t) for c, t in zip(self.previous_roots, self.rotated_out_at, strict=True)}
        _write_atomic(directory / ROTATED_OUT_FILE, json.dumps(rotated, indent=1).encode(), 0o644)
        _write_atomic(directory / INTERMEDIATES_FILE, "".join(_pem(c) for c in self.intermediates).encode(), 0o644)
        _write_atomic(directory / CERT_FILE, self.root_pem.encode(), 0o644)
        _write_atomic(directory / KEY_FILE, _key_pem(self.root_key).encode(), 0o600)

    def rotated_to(self, new: ConnectCA, cross_sign: bool = True, now: dt.datetime | None = None) -> ConnectCA:
        """`new` as the active root, the current one kept as a trusted previous root; with `cross_sign`
        the current root signs the new one's key, and leaves carry that certificate (Consul's rotation)."""
        intermediates: tuple[x509.Certificate, ...] = ()
        if cross_sign:
            intermediates = (self.cross_sign(new.root_cert, now),)
        return ConnectCA(cluster_id=self.cluster_id, root_cert=new.root_cert, root_key=new.root_key,
                         leaf_ttl=new.leaf_ttl, intermediates=intermediates,
                         previous_roots=(self.root_cert, *self.previous_roots),
                         rotated_out_at=(now or _now(), *self.rotated_out_at))

    def pruned(self, now: dt.datetime | None = None) -> ConnectCA:
        """Without the previous roots rotated out more than twice the leaf TTL ago (Consul's
        pruneCARoots: no leaf they signed can still be valid); the same CA when none is due."""
        now = now or _now()
        keep = [(c, t) for c, t in zip(self.previous_roots, self.rotated_out_at, strict=True)
                if now - t <= 2 * self.leaf_ttl]
        if len(keep) == len(self.previous_roots):
            return self
        return replace(self, previous_roots=tuple(c for c, _ in keep), rotated_out_at=tuple(t for _, t in keep))

    def cross_sign(self, root: x509.Certificate, now: dt.datetime | None = None) -> x509.Certificate:
        """`root`'s subject and key, issued by this root: a path from this root to `root`'s leaves."""
        now = now or _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(root.subject)
            .issuer_name(self.root_cert.subject)
            .public_key(root.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(min(root.not_valid_after_utc, self.root_cert.not_valid_after_utc))
        )
        for ext in root.extensions:
            if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
                builder = builder.add_extension(ext.value, critical=ext.critical)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()), critical=False)
        return builder.sign(self.root_key, hashes.SHA256())

    # --- signing ----------------------------------------------------------------------------
    @functools.cached_property
    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key())

    @functools.cached_property
    def _leaf_template(self) -> x509.CertificateBuilder:
        """What every leaf of this root shares, built once (a builder is immutable: each leaf
        extends its own copy): the issuer and the constant extensions, in the leaf's order."""
        return (
            x509.CertificateBuilder()
            .issuer_name(self.root_cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage("digital_signature", "key_encipherment", "data_encipherment", "key_agreement"),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
        )

    def sign_leaf(self, service: str, datacenter: str, now: dt.datetime | None = None,
                  ttl: dt.timedelta | None = None) -> Leaf:
        now = now or _now()
        ttl = ttl or self.leaf_ttl
        key = ec.generate_private_key(ec.SECP256R1())
        uri = identity.service_uri(self.trust_domain, datacenter, service)
        cert = (
            self._leaf_template
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ttl)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(self._authority_key_id, critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]),
                           critical=False)
            .sign(self.root_key, hashes.SHA256())
        )
        chain = _pem(cert) + "".join(_pem(c) for c in self.intermediates)
        return Leaf(service=service, service_uri=uri, cert=cert, cert_pem=chain, key_pem=_key_pem(key))

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


def root_id(cert: x509.Certificate) -> str:
    """Consul's root ID: the colon-hex SHA-1 fingerprint of the certificate."""
    return _colon_hex(cert.fingerprint(hashes.SHA1()))


def _root_json(ca: ConnectCA, cert: x509.Certificate, active: bool, index: int) -> dict[str, Any]:
    key = cert.public_key()
    try:
        signing_key_id = _colon_hex(cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    except x509.ExtensionNotFound:  # a user-supplied root may have none
        signing_key_id = ""
    return {
        "ID": root_id(cert),
        "Name": ROOT_NAME,
        "SerialNumber": cert.serial_number,
        "SigningKeyID": signing_key_id,
        "ExternalTrustDomain": ca.cluster_id,
        "NotBefore": _rfc3339(cert.not_valid_before_utc),
        "NotAfter": _rfc3339(cert.not_valid_after_utc),
        "RootCert": _pem(cert),
        "IntermediateCerts": [_pem(c) for c in ca.intermediates] if active and ca.intermediates else None,
        "Active": active,
        "PrivateKeyType": "ec" if isinstance(key, ec.EllipticCurvePublicKey) else "rsa",
        "PrivateKeyBits": key.curve.key_size if isinstance(key, ec.EllipticCurvePublicKey) else 0,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def roots_json(ca: ConnectCA, index: int = 1) -> dict[str, Any]:
    """The body of `/v1/connect/ca/roots` (and `/v1/agent/connect/ca/roots`): the active root first,
    then the rotated-out ones (`Active: false`) that leaves may still chain to."""
    return {
        "ActiveRootID": ca.root_id,
        "TrustDomain": ca.trust_domain,
        "Roots": [_root_json(ca, ca.root_cert, True, index)]
                 + [_root_json(ca, c, False, index) for c in ca.previous_roots],
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


def _load_pems(path: Path) -> tuple[x509.Certificate, ...]:
    if not path.exists():
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(path.read_bytes())) if path.read_bytes().strip() else ()
    except ValueError as exc:
        raise AgentError(f"{path}: not PEM certificates ({exc})") from None


def _rotated_out(path: Path, previous: tuple[x509.Certificate, ...]) -> tuple[dt.datetime, ...]:
    """When each previous root was rotated out; a root with no record (an older agent's) counts as
    rotated out now, so it is kept for two more leaf TTLs rather than pruned early."""
    try:
        recorded = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise AgentError(f"{path}: not the JSON the agent writes ({exc})") from None
    now = _now()
    return tuple(dt.datetime.fromisoformat(recorded[root_id(c)]) if root_id(c) in recorded else now
                 for c in previous)


def _load(key_path: Path, cert_path: Path, leaf_ttl: dt.timedelta, cluster_id: str | None = None) -> ConnectCA:
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
    previous = _load_pems(key_path.parent / PREVIOUS_FILE)
    extra: dict[str, Any] = {"previous_roots": previous,
                             "intermediates": _load_pems(key_path.parent / INTERMEDIATES_FILE),
                             "rotated_out_at": _rotated_out(key_path.parent / ROTATED_OUT_FILE, previous)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uri = san.value.get_values_for_type(x509.UniformResourceIdentifier)[0]
    except (x509.ExtensionNotFound, IndexError):
        if cluster_id is not None and extra["previous_roots"]:  # a user-supplied root, set by rotation
            return ConnectCA(cluster_id=cluster_id, root_cert=cert, root_key=key, leaf_ttl=leaf_ttl, **extra)
        raise AgentError(f"{cert_path}: root has no spiffe:// URI SAN") from None
    td = uri.removeprefix("spiffe://")
    if not td.endswith(".consul") or td == uri:
        raise AgentError(f"{cert_path}: URI SAN {uri!r} is not spiffe://<cluster-id>.consul")
    return ConnectCA(cluster_id=td.removesuffix(".consul"), root_cert=cert, root_key=key,
                     leaf_ttl=leaf_ttl, **extra)

"""Consul's CA configuration (`/v1/connect/ca/configuration`) for the built-in `consul` provider.

`parse(body)` checks a PUT body as Consul does (its rules and error texts) and fills Consul's
defaults; `needs_new_root(old, new)` says whether the update rotates the root: Consul keys the
provider's root on (PrivateKey, RootCert, PrivateKeyType, PrivateKeyBits), so changing only TTLs
keeps it. `new_root(config, cluster_id)` makes that root: generated, or the operator's own
(`PrivateKey` + `RootCert`). Pure functions; the caller persists and applies.

The dev agent signs with EC keys only: `PrivateKeyType: "rsa"` and providers other than `consul`
are refused rather than accepted and ignored.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nomadmesh.agent.connect.ca import CURVES, ConnectCA
from nomadmesh.agent.duration_seconds import parse_duration
from nomadmesh.durations import go_duration

DEFAULTS: dict[str, Any] = {"LeafCertTTL": "72h", "IntermediateCertTTL": "8760h", "RootCertTTL": "87600h",
                            "RotationPeriod": "2160h", "PrivateKeyType": "ec", "PrivateKeyBits": 256}
DURATIONS = ("LeafCertTTL", "IntermediateCertTTL", "RootCertTTL", "RotationPeriod")
MIN_LEAF, MAX_LEAF = dt.timedelta(hours=1), dt.timedelta(hours=8760)
MIN_INTERMEDIATE = dt.timedelta(hours=3)  # 3 x Consul's hourly intermediate renewal check
SECRET_KEYS = ("PrivateKey",)  # never shown back by GET


class CAConfigError(ValueError):
    """A configuration Consul would refuse; the message is Consul's."""


@dataclass(frozen=True)
class CAConfig:
    provider: str
    config: dict[str, Any]  # Consul's field names, defaults filled
    force_without_cross_signing: bool = False

    @property
    def leaf_ttl(self) -> dt.timedelta:
        return dt.timedelta(seconds=parse_duration(self.config["LeafCertTTL"]))

    def public(self) -> dict[str, Any]:
        """Config as GET shows it: the operator's private key left out."""
        return {k: v for k, v in self.config.items() if k not in SECRET_KEYS}

    def root_identity(self) -> tuple[Any, ...]:
        return tuple(self.config.get(k) for k in ("PrivateKey", "RootCert", "PrivateKeyType", "PrivateKeyBits"))


def default_config() -> CAConfig:
    """The configuration before any update: Consul's defaults."""
    return CAConfig("consul", dict(DEFAULTS))


def parse(body: Any) -> CAConfig:
    if not isinstance(body, dict):
        raise CAConfigError("Request decode failed: body must be a JSON object")
    provider = body.get("Provider", "")
    if provider != "consul":
        raise CAConfigError(f'CA provider "{provider}" is not available on the dev agent (only "consul")')
    raw = body.get("Config") or {}
    if not isinstance(raw, dict):
        raise CAConfigError("Request decode failed: Config must be an object")
    config = dict(DEFAULTS)
    config.update({k: v for k, v in raw.items() if v is not None and v != ""})
    ttls: dict[str, dt.timedelta] = {}
    for key in DURATIONS:
        value = config[key]
        try:
            seconds = float(value) / 1e9 if isinstance(value, (int, float)) else parse_duration(str(value))
        except ValueError:
            raise CAConfigError(f"error decoding config: {key}: invalid duration {value!r}") from None
        ttls[key] = dt.timedelta(seconds=seconds)  # shown back as given ("72h"), as Consul does
    leaf, inter, root = ttls["LeafCertTTL"], ttls["IntermediateCertTTL"], ttls["RootCertTTL"]
    if root < inter:
        raise CAConfigError("root cert TTL is set and is not greater than intermediate cert ttl. "
                            f"root cert ttl: {_go_duration(root)}, intermediate cert ttl: {_go_duration(inter)}")
    if leaf < MIN_LEAF:
        raise CAConfigError("leaf cert TTL must be greater or equal than 1h0m0s")
    if leaf > MAX_LEAF:
        raise CAConfigError("leaf cert TTL must be less than 8760h0m0s")
    if inter < MIN_INTERMEDIATE:
        raise CAConfigError("Intermediate Cert TTL must be greater or equal than 3h")
    if inter < 3 * leaf:
        raise CAConfigError(f"Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL "
                            f"(>={_go_duration(3 * leaf)}).")
    key_type, bits = config["PrivateKeyType"], config["PrivateKeyBits"]
    if key_type == "rsa":
        raise CAConfigError("private key type \"rsa\" is not available on the dev agent's CA (only \"ec\")")
    if key_type != "ec":
        raise CAConfigError("private key type must be either 'ec' or 'rsa'")
    if bits not in CURVES:
        raise CAConfigError("EC key length must be one of (224, 256, 384, 521) bits")
    if bool(config.get("PrivateKey")) != bool(config.get("RootCert")):
        raise CAConfigError("must provide both PrivateKey and RootCert, or neither")
    return CAConfig("consul", config, bool(body.get("ForceWithoutCrossSigning", False)))


def needs_new_root(old: CAConfig, new: CAConfig) -> bool:
    return old.root_identity() != new.root_identity()


def new_root(config: CAConfig, cluster_id: str) -> ConnectCA:
    """The root `config` asks for: the operator's PrivateKey + RootCert, or a newly generated one."""
    if not config.config.get("PrivateKey"):
        return ConnectCA.generate(cluster_id, config.leaf_ttl, key_bits=config.config["PrivateKeyBits"])
    try:
        key = serialization.load_pem_private_key(str(config.config["PrivateKey"]).encode(), password=None)
    except (ValueError, TypeError) as e:
        raise CAConfigError(f"error parsing private key: {e}") from None
    try:
        cert = x509.load_pem_x509_certificate(str(config.config["RootCert"]).encode())
    except ValueError as e:
        raise CAConfigError(f"error parsing root cert: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CAConfigError("private key type \"rsa\" is not available on the dev agent's CA (only \"ec\")")
    cert_key = cert.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey) \
            or cert_key.public_numbers() != key.public_key().public_numbers():
        raise CAConfigError("error validating root cert: the private key does not match the root certificate")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CAConfigError("error validating root cert: the root certificate is not a CA (BasicConstraints)")
    return ConnectCA(cluster_id=cluster_id, root_cert=cert, root_key=key, leaf_ttl=config.leaf_ttl)


def _go_duration(d: dt.timedelta) -> str:
    """As Go's Duration.String() prints it: 72h0m0s, 1h30m0s, 45s."""
    return go_duration(d // dt.timedelta(microseconds=1) * 1_000)

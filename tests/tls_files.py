"""Certificates for the OpenFlow-over-TLS tests: a CA, a controller certificate for 127.0.0.1
and a switch certificate, each signed by the CA (ed25519 keys would not do: Open vSwitch's
OpenSSL build wants RSA or EC, so EC P-256)."""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    controller: Pair
    switch: Pair
    stranger: Pair  # signed by another CA


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    pair = Pair(folder / f"{stem}-cert.pem", folder / f"{stem}-privkey.pem")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    pair.key.chmod(0o600)
    return pair


def _certificate(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls_files(folder: Path) -> TlsFiles:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_cert = _certificate("ryute test CA", ca_key, "ryute test CA", ca_key, ca=True)
    (folder / "cacert.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pairs = {}
    for stem, issuer, issuer_key in (("controller", "ryute test CA", ca_key),
                                     ("switch", "ryute test CA", ca_key),
                                     ("stranger", "another CA", other_key)):
        key = ec.generate_private_key(ec.SECP256R1())
        pairs[stem] = _write(folder, stem, _certificate(stem, key, issuer, issuer_key, ca=False),
                             key)
    return TlsFiles(folder / "cacert.pem", pairs["controller"], pairs["switch"],
                    pairs["stranger"])

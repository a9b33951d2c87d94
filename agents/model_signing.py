"""Signed model files: an ed25519 signature over the manifest, checked against trusted keys.

The manifest holds the sha256 of the metadata and the weights, so a signature over the
manifest's bytes covers the whole model: changed weights with a recomputed checksum no longer
verify. The signature is one more zip member, ``signature.json``
(``{"format": "ryute-signature-1", "key": KEY_ID, "ed25519": BASE64}``); ``KEY_ID`` is the
first 16 hex digits of the sha256 of the raw public key, so a reader finds the key that signed.

Keys are PEM files (``ryute model keygen``): PKCS#8 private keys, SubjectPublicKeyInfo public
keys. A trusted-keys setting is a PEM file with one or more public keys, or a folder of them.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_MEMBER = "signature.json"
SIGNATURE_FORMAT = "ryute-signature-1"
MAX_KEY_FILE_BYTES = 1 << 20


class SignatureError(ValueError):
    """A key or signature that cannot be used; the message says which file and why."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(private_path: str | os.PathLike) -> tuple[Path, Path]:
    """A new key pair: ``private_path`` (mode 0600) and ``private_path`` + ``.pub``."""
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    data = _read_key_file(Path(path))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise SignatureError(f"{path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an ed25519 key")
    return key


def load_trusted_keys(spec: str | os.PathLike) -> dict[str, Ed25519PublicKey]:
    """``{key id: public key}`` of a PEM file (one or more keys) or of every ``*.pub`` and
    ``*.pem`` file in a folder; no key at all is an error (it would trust nothing silently)."""
    path = Path(spec)
    files = sorted(p for p in path.iterdir() if p.suffix in (".pub", ".pem")) \
        if path.is_dir() else [path]
    keys: dict[str, Ed25519PublicKey] = {}
    for file in files:
        data = _read_key_file(file)
        blocks = [b"-----BEGIN PUBLIC KEY-----" + part for part in
                  data.split(b"-----BEGIN PUBLIC KEY-----")[1:]]
        for block in blocks:
            try:
                key = serialization.load_pem_public_key(block)
            except (ValueError, TypeError) as error:
                raise SignatureError(f"{file}: not a PEM public key ({error})") from None
            if not isinstance(key, Ed25519PublicKey):
                raise SignatureError(f"{file}: not an ed25519 public key")
            keys[key_id(key)] = key
    if not keys:
        raise SignatureError(f"{spec}: no ed25519 public key found")
    return keys


def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES or not path.is_file():
            raise SignatureError(f"{path}: not a key file")
        return path.read_bytes()
    except OSError as error:
        raise SignatureError(f"{path}: cannot read ({error.strerror or error})") from None


def signature_document(manifest: bytes, key: Ed25519PrivateKey) -> bytes:
    return json.dumps({"format": SIGNATURE_FORMAT, "key": key_id(key.public_key()),
                       "ed25519": base64.b64encode(key.sign(manifest)).decode()}).encode()


def check_signature(source: str, manifest: bytes, signature: bytes | None,
                    trusted: dict[str, Ed25519PublicKey]) -> str:
    """The id of the trusted key that signed ``manifest``, else a :class:`SignatureError`."""
    if signature is None:
        raise SignatureError(f"{source}: not signed, and trusted keys are configured")
    try:
        document = json.loads(signature)
        kid, raw = document["key"], base64.b64decode(document["ed25519"], validate=True)
        if document.get("format") != SIGNATURE_FORMAT or not isinstance(kid, str):
            raise ValueError("unknown format")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise SignatureError(f"{source}: unreadable {SIGNATURE_MEMBER}") from None
    key = trusted.get(kid)
    if key is None:
        raise SignatureError(f"{source}: signed by key {kid[:16]!r}, which is not trusted")
    try:
        key.verify(raw, manifest)
    except InvalidSignature:
        raise SignatureError(f"{source}: wrong signature (the model was changed after it was "
                             f"signed, or the signature is not key {kid}'s)") from None
    return kid


def sign_model(path: str | os.PathLike, private_key: str | os.PathLike) -> str:
    """Add (or replace) the signature of model file ``path``; returns the key id. Written to
    a temporary file and renamed, so a reader never sees half a file."""
    from agents.model_file import MEMBERS, read_model

    path = Path(path)
    read_model(path)  # only a model that loads is signed
    key = load_private_key(private_key)
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in MEMBERS}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
        z.writestr(SIGNATURE_MEMBER, signature_document(parts["manifest.json"], key))
    os.replace(tmp, path)
    return key_id(key.public_key())

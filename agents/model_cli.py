"""``ryute model keygen|sign|verify``: ed25519 signatures of model files (agents.model_signing)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    model = subparsers.add_parser("model", help="sign and verify model files",
                                  description="ed25519 signatures of model files. A controller "
                                  "with trusted_keys set loads signed models only.")
    commands = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    keygen = commands.add_parser("keygen", help="write a new key pair: KEY (private, 0600) "
                                 "and KEY.pub (public, for trusted_keys)")
    keygen.add_argument("key", type=Path)
    keygen.set_defaults(func=run_keygen)
    sign = commands.add_parser("sign", help="sign a model file (in place)")
    sign.add_argument("model", type=Path)
    sign.add_argument("--key", required=True, type=Path, help="private key (PEM)")
    sign.set_defaults(func=run_sign)
    verify = commands.add_parser("verify", help="check a model file's checksums and signature")
    verify.add_argument("model", type=Path)
    verify.add_argument("--trusted-keys", required=True, type=Path,
                        help="a PEM file of public keys, or a folder of *.pub files")
    verify.set_defaults(func=run_verify)


def run_keygen(args: argparse.Namespace) -> int:
    from agents.model_signing import generate_key, key_id, load_private_key

    if args.key.exists():
        raise ValueError(f"{args.key} exists; not overwritten")
    private, public = generate_key(args.key)
    print(f"key {key_id(load_private_key(private).public_key())}: private {private}, "
          f"public {public}")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    from agents.model_signing import sign_model

    print(f"{args.model}: signed with key {sign_model(args.model, args.key)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from agents.model_file import read_model
    from agents.model_signing import load_trusted_keys

    read_model(args.model, trusted_keys=load_trusted_keys(args.trusted_keys))
    print(f"{args.model}: checksums and signature valid")
    return 0

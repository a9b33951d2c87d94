"""Signed models (issue 15, item 7): tampering with a recomputed checksum is caught when
trusted keys are configured; ``ryute model keygen|sign|verify``; the controller refuses
unsigned or wrongly signed models at start and on hot-swap."""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest

from agents.model_file import DEFAULT_DIR
from lab.cli import main

TOKEN = "signing-token-0123456789abcdef"


@pytest.fixture
def keys(tmp_path, capsys):
    folder = tmp_path / "keys"
    folder.mkdir()
    assert main(["model", "keygen", str(folder / "ops")]) == 0
    assert main(["model", "keygen", str(tmp_path / "stranger")]) == 0
    capsys.readouterr()
    return folder / "ops", folder, tmp_path / "stranger"


def signed_copy(tmp_path, private, name="signed.zip"):
    path = tmp_path / name
    shutil.copy(DEFAULT_DIR / "abilene.zip", path)
    assert main(["model", "sign", str(path), "--key", str(private)]) == 0
    return path


def tampered(path, out):
    """Weights (here: metadata) changed and the checksums recomputed; the signature kept."""
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(parts["metadata.json"])
    meta["encoding"]["logit_scale"] = 50.0
    parts["metadata.json"] = json.dumps(meta).encode()
    manifest = json.loads(parts["manifest.json"])
    manifest["sha256"]["metadata.json"] = hashlib.sha256(parts["metadata.json"]).hexdigest()
    parts["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return out


def verify(path, trusted, capsys):
    code = main(["model", "verify", str(path), "--trusted-keys", str(trusted)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_sign_then_verify_and_every_way_to_fail(tmp_path, keys, capsys):
    private, folder, stranger = keys
    signed = signed_copy(tmp_path, private)
    capsys.readouterr()
    assert verify(signed, folder, capsys) == (0, f"{signed}: checksums and signature valid\n")
    assert verify(signed, folder / "ops.pub", capsys)[0] == 0
    code, err = verify(tampered(signed, tmp_path / "tampered.zip"), folder, capsys)
    assert code == 2 and "wrong signature" in err
    code, err = verify(DEFAULT_DIR / "abilene.zip", folder, capsys)
    assert code == 2 and "not signed" in err
    other = signed_copy(tmp_path, stranger, "other.zip")
    capsys.readouterr()
    code, err = verify(other, folder, capsys)
    assert code == 2 and "which is not trusted" in err
    code, err = verify(signed, tmp_path / "signed.zip", capsys)  # a model is no key file
    assert code == 2 and "no ed25519 public key" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_keygen_does_not_overwrite_and_keeps_the_private_key_private(keys, capsys):
    private, _, _ = keys
    assert private.stat().st_mode & 0o777 == 0o600
    assert main(["model", "keygen", str(private)]) == 2
    assert "exists; not overwritten" in capsys.readouterr().err


def test_the_controller_loads_only_signed_models(controller, tmp_path, keys):
    private, folder, stranger = keys
    signed = signed_copy(tmp_path, private)
    ctl = controller("--model", str(DEFAULT_DIR / "abilene.zip"), "--trusted-keys", str(folder),
                     "--allow-fallback-only", env={"RYUTE_API_TOKEN": TOKEN}).wait_ready()
    assert ctl.call("/te/v1/status")[1]["model"] is None  # unsigned: the fallback alone
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for bad, reason in ((tampered(signed, tmp_path / "t.zip"), "wrong signature"),
                        (signed_copy(tmp_path, stranger, "s.zip"), "not trusted"),
                        (DEFAULT_DIR / "abilene.zip", "not signed")):
        status, answer = ctl.call("/te/v1/model", "PUT", {"path": str(bad)}, auth)
        assert status == 422 and reason in answer["error"], answer
    status, answer = ctl.call("/te/v1/model", "PUT", {"path": str(signed)}, auth)
    assert status == 200 and answer["signed"] is True
    assert ctl.call("/te/v1/status")[1]["model"].startswith("signed.zip:")


def test_an_unsigned_model_at_start_refuses_to_start(controller, keys):
    _, folder, _ = keys
    ctl = controller("--model", str(DEFAULT_DIR / "abilene.zip"), "--trusted-keys", str(folder))
    assert ctl.wait_exit() == 2
    assert "not signed" in ctl.output().strip().splitlines()[-1]


def test_a_bad_trusted_keys_setting_refuses_to_start(controller, tmp_path):
    ctl = controller("--trusted-keys", str(tmp_path / "absent.pub"))
    assert ctl.wait_exit() == 2
    assert "absent.pub: cannot read" in ctl.output().strip().splitlines()[-1]


def test_adaptation_and_trusted_keys_are_refused_together(controller, keys):
    _, folder, _ = keys
    ctl = controller("--model", "default", "--adapt", "--trusted-keys", str(folder))
    assert ctl.wait_exit() == 2
    assert "the adapter's models are not signed" in ctl.output().strip().splitlines()[-1]

"""Model files that try to stall, sink or crash the loader (issue 15): real crafted files,
each refused with a ModelFileError naming the file, before anything large is read or built."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

from agents.model_file import DEFAULT_DIR, ModelFileError, load_agent
from sim.paths import PathSet
from topologies.catalog import load_topology

SHIPPED = DEFAULT_DIR / "abilene.zip"


@pytest.fixture(scope="module")
def abilene():
    return PathSet.from_graph(load_topology("abilene"))


def members(path: Path = SHIPPED) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def craft(path: Path, metadata: object = None, manifest: object = None,
          weights: bytes | None = None, raw_metadata: bytes | None = None) -> Path:
    """The shipped Abilene model with some parts replaced and the checksums recomputed (what
    someone who wants the file to load would do)."""
    parts = members()
    if metadata is not None:
        parts["metadata.json"] = json.dumps(metadata).encode()
    if raw_metadata is not None:
        parts["metadata.json"] = raw_metadata
    if weights is not None:
        parts["weights.pt"] = weights
    parts["manifest.json"] = json.dumps(manifest if manifest is not None else {
        "format": "ryute-model-1",
        "sha256": {name: hashlib.sha256(parts[name]).hexdigest()
                   for name in ("metadata.json", "weights.pt")}}).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return path


def shipped_metadata() -> dict:
    return json.loads(members()["metadata.json"])


def with_network(**changes) -> dict:
    meta = shipped_metadata()
    meta["network"] = {**meta["network"], **changes}
    return meta


def refused(path: Path, path_set: PathSet, match: str) -> str:
    started = time.perf_counter()
    with pytest.raises(ModelFileError) as error:
        load_agent(path, path_set, "abilene")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert match in message, message
    return message


def test_the_shipped_model_still_loads(abilene, tmp_path):
    assert load_agent(craft(tmp_path / "same.zip"), abilene, "abilene").net.hidden == 64


@pytest.mark.parametrize("name, metadata, manifest, match", [
    ("sha-list", None, {"format": "ryute-model-1", "sha256": [1]}, "no sha256 table"),
    ("manifest-list", None, [1], "manifest.json must be a JSON object"),
    ("metadata-list", [1], None, "metadata.json must be a JSON object"),
    ("topology-list", {**shipped_metadata(), "topology": [1]}, None, "trained for topology"),
    ("n-inputs", with_network(**{"class": "SplitNet", "n_inputs": 1e12, "hidden": [8]}), None,
     "n_inputs must be an integer in 1..1656"),
    ("hidden", with_network(hidden=20000), None, "hidden must be an integer in 1..4096"),
    ("rounds", with_network(rounds=1e9), None, "rounds must be an integer in 0..64"),
    ("rounds-text", with_network(rounds="4"), None, "rounds must be an integer"),
    ("layers", with_network(**{"class": "SplitNet", "n_inputs": 8, "hidden": [4096] * 17}), None,
     "at most 16 widths"),
    ("params", with_network(**{"class": "SplitNet", "n_inputs": 1656, "hidden": [4096] * 9}),
     None, "parameters; at most"),
    ("class", with_network(**{"class": {"x": 1}}), None, "unknown network class"),
    ("history", {**shipped_metadata(), "encoding": {**shipped_metadata()["encoding"],
                                                    "history": 10**9}}, None,
     "history must be an integer in 1..1024"),
])
def test_crafted_metadata_is_refused(abilene, tmp_path, name, metadata, manifest, match):
    refused(craft(tmp_path / f"{name}.zip", metadata, manifest), abilene, match)


def test_deeply_nested_json_is_refused(abilene, tmp_path):
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    refused(craft(tmp_path / "deep.zip", raw_metadata=deep), abilene, "nested deeper than")


@pytest.mark.parametrize("make, match", [
    (lambda folder: folder, "not a regular file"),
    (lambda folder: Path("/dev/zero"), "not a regular file"),
    (lambda folder: Path("/dev/urandom"), "not a regular file"),
])
def test_only_regular_files_are_opened(abilene, tmp_path, make, match):
    refused(make(tmp_path), abilene, match)


def test_a_fifo_is_refused_without_waiting_for_a_writer(abilene, tmp_path):
    fifo = tmp_path / "model.zip"
    os.mkfifo(fifo)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(_try(fifo, abilene)), daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the loader so the test run can end
        with open(fifo, "wb"):
            pass
        pytest.fail("the loader waited for a writer on a FIFO")
    assert isinstance(outcome[0], ModelFileError) and "not a regular file" in str(outcome[0])


def _try(path, path_set):
    try:
        load_agent(path, path_set, "abilene")
    except Exception as error:  # noqa: BLE001 - the test looks at what came out
        return error
    return None


def test_a_zip_bomb_is_refused_from_its_directory(abilene, tmp_path):
    weights = b"\0" * (300 * 2**20)  # deflates to ~300 KB
    bomb = craft(tmp_path / "bomb.zip", weights=weights)
    assert bomb.stat().st_size < 2 * 2**20
    refused(bomb, abilene, "member weights.pt of 314572800 bytes; at most")


def test_a_zip_bomb_lying_about_its_size_stops_at_the_limit(abilene, tmp_path):
    """The directory says 1 KB, the member inflates to 64 MB: nothing is inflated beyond what
    the directory says (then the CRC fails), so memory stays bounded."""
    import tracemalloc

    from agents import model_file

    bomb = craft(tmp_path / "liar.zip", raw_metadata=b" " * (64 * 2**20))
    data = bytearray(bomb.read_bytes())
    # patch the sizes of metadata.json in its local header and its central directory entry
    with zipfile.ZipFile(bomb) as z:
        info = z.getinfo("metadata.json")
    fake = (1024).to_bytes(4, "little")
    local = info.header_offset
    data[local + 22:local + 26] = fake
    central = data.rfind(b"PK\x01\x02metadata.json"[:4], 0)
    while central >= 0 and data[central + 46:central + 46 + 13] != b"metadata.json":
        central = data.rfind(b"PK\x01\x02", 0, central)
    data[central + 24:central + 28] = fake
    bomb.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as error:
            load_agent(bomb, abilene, "abilene")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(bomb) in str(error.value)
    assert peak < 4 * model_file.MEMBER_LIMITS["metadata.json"]


def test_a_file_larger_than_any_model_is_refused_before_reading(abilene, tmp_path):
    from agents import model_file

    big = tmp_path / "big.zip"
    with open(big, "wb") as handle:
        handle.truncate(model_file.MAX_BYTES + 1)  # sparse: nothing written
    refused(big, abilene, "larger than any model")


# -- the controller: hot-swap answers 422 at once, start-up falls back ---------------------------
TOKEN = "model-limits-token-0123456789"


def test_hot_swap_refuses_what_cannot_be_a_model_and_keeps_serving(controller, tmp_path):
    ctl = controller("--model", "default", env={"RYUTE_API_TOKEN": TOKEN}).wait_ready()
    model = ctl.call("/te/v1/status")[1]["model"]
    assert model.startswith("abilene")
    fifo = tmp_path / "fifo.zip"
    os.mkfifo(fifo)
    bad = [fifo, Path("/dev/zero"), Path("/dev/urandom"), tmp_path,
           craft(tmp_path / "hidden.zip", with_network(hidden=20000)),
           craft(tmp_path / "rounds.zip", with_network(rounds=1e9)),
           craft(tmp_path / "sha.zip", manifest={"format": "ryute-model-1", "sha256": [1]}),
           craft(tmp_path / "list.zip", [1]),
           craft(tmp_path / "deep.zip", raw_metadata=b"[" * 100_000 + b"]" * 100_000)]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in bad:
        started = time.perf_counter()
        status, answer = ctl.call("/te/v1/model", "PUT", {"path": str(path)}, auth, timeout_s=20)
        assert status == 422, (path, answer)
        assert str(path) in answer["error"] and time.perf_counter() - started < 10
        assert ctl.call("/te/v1/status")[1]["model"] == model
    assert ctl.process.poll() is None
    assert "Traceback" not in ctl.output()


@pytest.mark.parametrize("name, metadata, manifest", [
    ("sha", None, {"format": "ryute-model-1", "sha256": [1]}),
    ("list", [1], None),
    ("n-inputs", with_network(**{"class": "SplitNet", "n_inputs": 1e12, "hidden": [8]}), None),
])
def test_a_crafted_model_at_start_refuses_to_start(controller, tmp_path, name, metadata,
                                                  manifest):
    """The operator asked for an agent: starting without it would hide the mistake."""
    path = craft(tmp_path / f"{name}.zip", metadata, manifest)
    ctl = controller("--model", str(path))
    assert ctl.wait_exit() == 2
    last = ctl.output().strip().splitlines()[-1]
    assert str(path) in last and "--allow-fallback-only" in last
    assert "Traceback" not in ctl.output()


@pytest.mark.parametrize("model", ["absent.zip", "crafted"])
def test_allow_fallback_only_starts_the_fallback_alone_and_says_so(controller, tmp_path, model):
    path = tmp_path / model if model != "crafted" else craft(tmp_path / "sha.zip", None, {
        "format": "ryute-model-1", "sha256": [1]})
    ctl = controller("--model", str(path), "--allow-fallback-only").wait_ready()
    status = ctl.call("/te/v1/status")[1]
    assert status["model"] is None and status["source"] == "fallback"
    assert status["health"]["reasons"] == ["no model loaded"]
    assert "agent not loaded, the fallback decides alone" in ctl.output()
    assert "Traceback" not in ctl.output()


# -- found by the fuzz suites (tests/unit/test_fuzz_readers.py) ------------------------------
def test_a_damaged_deflate_stream_is_a_model_file_error(abilene, tmp_path):
    from test_one_line_errors import break_deflate

    path = craft(tmp_path / "damaged.zip")
    break_deflate(path, "weights.pt")
    refused(path, abilene, "corrupt or not a model file")


def test_weights_of_another_network_are_refused_in_one_line(abilene, tmp_path):
    """torch's message for a state_dict that does not fit spans several lines."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"head.weight": torch.zeros(2, 2)}, buffer)
    refused(craft(tmp_path / "other.zip", weights=buffer.getvalue()), abilene,
            "weights do not match the described network")

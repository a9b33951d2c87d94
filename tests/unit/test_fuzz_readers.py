"""Hypothesis over the readers of untrusted files (issue 15): topology files (JSON, SNDlib XML,
Topology Zoo GraphML, Repetita), traffic series (.tm.npz) and model files. Every input either
reads into what the reader documents, or fails with the reader's own error (TopologyError,
TrafficError, ModelFileError) in one line naming the file; never another exception.

Bounded for ``make test`` (``RYUTE_FUZZ_EXAMPLES`` per property, default 50, derandomized);
``benchmarks/fuzz.py`` runs them longer, at random.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from agents.model_file import DEFAULT_DIR, ModelFileError, load_agent, read_model
from sim.paths import PathSet
from topologies.catalog import load_topology
from topologies.loaders import MAX_CAPACITY_MBPS, MIN_CAPACITY_MBPS, TopologyError
from topologies.traffic import TrafficError, TrafficSeries, load_traffic, save_traffic

EXAMPLES = int(os.environ.get("RYUTE_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("RYUTE_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FIXTURES = Path(__file__).parent / "fixtures"
FOLDER = Path(tempfile.mkdtemp(prefix="ryute-fuzz-"))


def one_clear_error(read, path: Path, error_type: type[Exception]) -> Any:
    """``read(path)``, or None when it fails with ``error_type`` in one line naming the file;
    any other exception fails the test."""
    try:
        return read(path)
    except error_type as error:
        message = str(error)
        assert str(path) in message and "\n" not in message, message
        return None


# -- values of every JSON shape ----------------------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                    st.sampled_from([0, -1, 1e-320, 1e300, "1", "10", "nan", "", "a", "b"]))
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)
NAME = st.sampled_from(["a", "b", "c", "d"]) | ANY
NUMBER = st.floats(1e-6, 1e12) | st.integers(-5, 10**10) | ANY


# -- topology files ----------------------------------------------------------------------------
def read_topology(path: Path):
    graph = one_clear_error(load_topology, path, TopologyError)
    if graph is not None:  # what the loaders document of a graph they return
        for _, _, data in graph.edges(data=True):
            assert MIN_CAPACITY_MBPS <= data["capacity_mbps"] <= MAX_CAPACITY_MBPS
        assert all(isinstance(data["dpid"], int) for _, data in graph.nodes(data=True))
        assert all(graph.has_edge(v, u) for u, v in graph.edges)
    return graph


NODE = NAME | st.fixed_dictionaries({"name": NAME}, optional={
    "dpid": NUMBER, "hosts": ANY, "pos": st.lists(NUMBER, max_size=3) | ANY})
LINK = st.fixed_dictionaries({"src": NAME, "dst": NAME}, optional={
    "capacity_mbps": NUMBER, "igp_weight": NUMBER, "delay": NUMBER})
TOPOLOGY = st.fixed_dictionaries(
    {"nodes": st.lists(NODE, max_size=5), "links": st.lists(LINK, max_size=6)},
    optional={"name": ANY, "unit": st.sampled_from(["Mbit/s", "Gbit/s"]) | ANY,
              "coordinates_lon_lat": st.dictionaries(NAME.filter(lambda n: isinstance(n, str)),
                                                     ANY, max_size=3) | ANY}) | ANY


@FUZZ
@given(document=TOPOLOGY)
def test_json_topologies(document):
    path = FOLDER / "fuzz.json"
    path.write_text(json.dumps(document))
    read_topology(path)


def _text_values(draw, count: int) -> list[str]:
    values = st.one_of(st.integers(-3, 10**12).map(str), st.floats(allow_nan=True).map(str),
                       st.sampled_from(["", "x", "1e-320", "0", "-1", "&amp;", "<", "a b"]))
    return [draw(values) for _ in range(count)]


@st.composite
def repetita(draw) -> str:
    n, m = draw(st.integers(0, 4)), draw(st.integers(0, 5))
    lines = [f"NODES {draw(st.sampled_from([str(n), str(n + 1), 'x']))}", "label x y"]
    lines += [" ".join([draw(st.sampled_from(["a", "b", "c", "d", "a"])),
                        *_text_values(draw, draw(st.integers(0, 3)))]) for _ in range(n)]
    lines += [f"EDGES {draw(st.sampled_from([str(m), str(m + 2)]))}",
              "label src dest weight bw delay"]
    lines += [" ".join([f"e{i}", *_text_values(draw, draw(st.integers(3, 6)))])
              for i in range(m)]
    return "\n".join(draw(st.permutations(lines)) if draw(st.booleans()) else lines)


@st.composite
def graphml(draw) -> str:
    kinds = draw(st.lists(st.sampled_from(["string", "double", "int", "boolean"]), min_size=6,
                          max_size=6))
    keys = "".join(f'<key attr.name="{name}" attr.type="{kind}" for="{on}" id="{key}"/>'
                   for key, (name, on), kind in zip(
                       "abcdef", [("label", "node"), ("Longitude", "node"),
                                  ("Latitude", "node"), ("LinkSpeedRaw", "edge"),
                                  ("LinkSpeed", "edge"), ("LinkSpeedUnits", "edge")], kinds))
    values = _text_values(draw, 12)
    n = draw(st.integers(0, 3))
    nodes = "".join(f'<node id="{i}"><data key="a">{values[i]}</data><data key="b">'
                    f'{values[i + 3]}</data><data key="c">{values[i + 6]}</data></node>'
                    for i in range(n))
    edges = "".join(f'<edge source="{draw(st.integers(0, 3))}" target="{draw(st.integers(0, 3))}"'
                    f'><data key="{draw(st.sampled_from("def"))}">{v}</data></edge>'
                    for v in values[9:9 + draw(st.integers(0, 3))])
    kind = draw(st.sampled_from(["undirected", "directed"]))
    return (f'<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
            f'{keys}<graph edgedefault="{kind}">{nodes}{edges}</graph></graphml>')


@st.composite
def sndlib(draw) -> str:
    values = _text_values(draw, 10)
    nodes = "".join(f'<node id="{name}"><coordinates><x>{values[i]}</x><y>{values[i + 3]}</y>'
                    f'</coordinates></node>' for i, name in enumerate(
                        draw(st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=3))))
    links = "".join(f'<link id="l{i}"><source>{draw(st.sampled_from("abcx"))}</source><target>'
                    f'{draw(st.sampled_from("abcx"))}</target><preInstalledModule><capacity>'
                    f'{values[6 + i]}</capacity></preInstalledModule></link>'
                    for i in range(draw(st.integers(0, 4))))
    return (f'<network><networkStructure><nodes coordinatesType="geographical">{nodes}</nodes>'
            f'<links>{links}</links></networkStructure></network>')


@FUZZ
@given(kind=st.sampled_from([".graph", ".graphml", ".xml"]), data=st.data())
def test_text_topologies(kind, data):
    text = data.draw({".graph": repetita(), ".graphml": graphml(), ".xml": sndlib()}[kind])
    path = FOLDER / f"fuzz{kind}"
    path.write_text(text)
    read_topology(path)


@FUZZ
@given(name=st.sampled_from(["tiny.json", "repetita-tiny.graph", "zoo-tiny.graphml",
                             "sndlib-network.xml"]), seed=st.integers(0, 2**32 - 1))
def test_damaged_topology_files(name, seed):
    path = FOLDER / f"damaged{Path(name).suffix}"
    path.write_bytes(damaged((FIXTURES / name).read_bytes(), random.Random(seed)))
    read_topology(path)


def damaged(data: bytes, rng: random.Random) -> bytes:
    """``data`` with a few bytes flipped, cut or copied, as a bad disk or a hand edit leaves it."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data)) if data else 0
        action = rng.choice(["flip", "cut", "repeat", "truncate"])
        if action == "flip" and data:
            data[at] ^= 1 << rng.randrange(8)
        elif action == "cut":
            del data[at:at + rng.randint(1, 40)]
        elif action == "repeat":
            data[at:at] = data[at:at + rng.randint(1, 40)]
        else:
            del data[at:]
    return bytes(data)


# -- traffic files -----------------------------------------------------------------------------
def read_traffic(path: Path):
    series = one_clear_error(load_traffic, path, TrafficError)
    if series is not None:  # what TrafficSeries documents
        tm = series.tm
        assert tm.dtype == np.float64 and tm.ndim == 3 and tm.shape[1:] == (len(series.nodes),) * 2
        assert np.isfinite(tm).all() and (tm >= 0).all()
        assert series.interval_s is None or series.interval_s > 0
    return series


DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64,
                          "U3", "S2", "datetime64[s]", [("x", "f8"), ("y", "i4")]])
ARRAYS = DTYPES.flatmap(lambda dtype: hnp.arrays(
    dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
SQUARE = st.tuples(st.integers(0, 3), st.integers(0, 3)).flatmap(lambda tn: hnp.arrays(
    np.float64, (tn[0], tn[1], tn[1]),
    elements=st.floats(0, 1e6) | st.sampled_from([-1.0, math.nan, math.inf])))


@FUZZ
@given(tm=ARRAYS | SQUARE, nodes=ARRAYS | st.lists(
    st.sampled_from(["a", "b", "c", "a"]), max_size=4).map(np.array),
    extra=st.dictionaries(st.sampled_from(["times", "interval_s", "other"]), ARRAYS, max_size=2),
    compressed=st.booleans())
def test_traffic_files(tm, nodes, extra, compressed):
    path = FOLDER / "fuzz.tm.npz"
    with open(path, "wb") as handle:
        (np.savez_compressed if compressed else np.savez)(handle, tm=tm, nodes=nodes, **extra)
    read_traffic(path)


VALID_TRAFFIC = save_traffic(TrafficSeries(np.ones((4, 3, 3)) - np.eye(3), ("a", "b", "c"),
                                            interval_s=300), FOLDER / "valid.tm.npz")


@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_damaged_traffic_files(seed):
    path = FOLDER / "damaged.tm.npz"
    path.write_bytes(damaged(VALID_TRAFFIC.read_bytes(), random.Random(seed)))
    read_traffic(path)


# -- model files -------------------------------------------------------------------------------
SHIPPED = DEFAULT_DIR / "abilene.zip"


@pytest.fixture(scope="module")
def abilene() -> PathSet:
    return PathSet.from_graph(load_topology("abilene"))


def shipped_members() -> dict[str, bytes]:
    with zipfile.ZipFile(SHIPPED) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


MEMBERS = shipped_members()
METADATA = json.loads(MEMBERS["metadata.json"])


def leaves(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """The key paths of every value in a JSON tree."""
    if isinstance(tree, dict):
        return [prefix] + [p for key, value in tree.items() for p in leaves(value, (*prefix, key))]
    if isinstance(tree, list):
        return [prefix] + [p for i, value in enumerate(tree[:4]) for p in leaves(value, (*prefix, i))]
    return [prefix]


def replaced(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = replaced(tree[path[0]], path[1:], value)
    return copy


def model_file(path: Path, metadata: Any, weights: bytes, manifest: Any = None) -> Path:
    """A model file of these parts, its checksums recomputed unless ``manifest`` is given."""
    blob = json.dumps(metadata).encode()
    manifest = manifest if manifest is not None else {"format": "ryute-model-1", "sha256": {
        "metadata.json": hashlib.sha256(blob).hexdigest(),
        "weights.pt": hashlib.sha256(weights).hexdigest()}}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("metadata.json", blob)
        archive.writestr("weights.pt", weights)
    return path


def read_model_file(path: Path, path_set: PathSet) -> None:
    one_clear_error(read_model, path, ModelFileError)
    one_clear_error(lambda p: load_agent(p, path_set, "abilene"), path, ModelFileError)


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(leaves(METADATA)), ANY), min_size=1,
                      max_size=3))
def test_models_with_crafted_metadata(abilene, edits):
    """Each change re-signed with fresh checksums: what someone who wants it to load does."""
    metadata = METADATA
    for path, value in edits:
        try:
            metadata = replaced(metadata, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed this path
            continue
    read_model_file(model_file(FOLDER / "crafted.zip", metadata, MEMBERS["weights.pt"]), abilene)


TENSORS = st.dictionaries(
    st.text(max_size=12) | st.sampled_from(["net.0.weight", "net.0.bias", "head.weight"]),
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64]),
               hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)), max_size=3)


@FUZZ
@given(state=TENSORS | ANY, manifest=st.none() | ANY)
def test_models_with_crafted_weights_or_manifest(abilene, state, manifest):
    import torch

    buffer = io.BytesIO()
    if isinstance(state, dict) and all(isinstance(v, np.ndarray) for v in state.values()):
        state = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}
    torch.save(state, buffer)
    read_model_file(model_file(FOLDER / "weights.zip", METADATA, buffer.getvalue(), manifest),
                    abilene)


@FUZZ
@given(seed=st.integers(0, 2**32 - 1))
def test_damaged_model_files(abilene, seed):
    path = FOLDER / "damaged.zip"
    path.write_bytes(damaged(SHIPPED.read_bytes(), random.Random(seed)))
    read_model_file(path, abilene)


def test_the_fuzzed_readers_accept_the_good_files(abilene):
    """The properties are not vacuous: the undamaged inputs read."""
    for name in ("tiny.json", "repetita-tiny.graph", "sndlib-network.xml"):
        assert read_topology(FIXTURES / name) is not None, name
    assert read_traffic(VALID_TRAFFIC) is not None
    agent = load_agent(model_file(FOLDER / "good.zip", METADATA, MEMBERS["weights.pt"]), abilene,
                       "abilene")
    assert agent.path_set is abilene

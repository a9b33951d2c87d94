"""Traffic series: validation, slicing, alignment, the .tm.npz format, SNDlib demand files,
the synthetic generator, the real shared series, and the ``ryute data`` CLI."""
from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lab.cli import main
from topologies.catalog import TopologyError, load_topology
from topologies.traffic import (
    TrafficError,
    TrafficSeries,
    load_traffic,
    read_sndlib_archive,
    read_sndlib_demands,
    save_traffic,
    shared_data_dir,
    synthetic_traffic,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEMANDS = FIXTURES / "sndlib-demands"
TRAFFIC = shared_data_dir() / "traffic"


def series(steps: int = 4, nodes=("A", "B", "C"), **kwargs) -> TrafficSeries:
    n = len(nodes)
    tm = np.arange(steps * n * n, dtype=float).reshape(steps, n, n) + 1
    tm[:, np.arange(n), np.arange(n)] = 0
    return TrafficSeries(tm, tuple(nodes), **kwargs)


# -- the series ----------------------------------------------------------------------------

def test_series_is_an_immutable_float64_copy():
    tm = np.ones((2, 2, 2), dtype=np.float32) - np.eye(2, dtype=np.float32)
    s = TrafficSeries(tm, ("A", "B"))
    assert s.tm.dtype == np.float64 and not s.tm.flags.writeable
    tm[0, 0, 1] = 99
    assert s.tm[0, 0, 1] == 1
    assert len(s) == 2 and s.times == () and s.interval_s is None


@pytest.mark.parametrize("tm, nodes, times, message", [
    (np.zeros((2, 2)), ("A", "B"), (), r"shape \[T, N, N\]"),
    (np.zeros((1, 2, 3)), ("A", "B"), (), r"shape \[T, N, N\]"),
    (np.zeros((1, 2, 2)), ("A", "B", "C"), (), "2x2 but there are 3 nodes"),
    (np.zeros((1, 2, 2)), ("A", "A"), (), "duplicate node names"),
    (np.zeros((1, 2, 2)), ("A", "B"), ("x", "y"), "2 times for 1 matrices"),
    (np.full((1, 2, 2), np.nan), ("A", "B"), (), "non-finite"),
    (-np.ones((1, 2, 2)) + np.eye(2), ("A", "B"), (), "negative"),
    (np.ones((1, 2, 2)), ("A", "B"), (), "non-zero diagonal"),
])
def test_series_validation(tm, nodes, times, message):
    with pytest.raises(TrafficError, match=message):
        TrafficSeries(tm, nodes, times, source="x")


def test_valid_mask_marks_missing_intervals():
    tm = series(3).tm.copy()
    tm[1] = 0
    assert TrafficSeries(tm, ("A", "B", "C")).valid_mask.tolist() == [True, False, True]


def test_slice_scaled_and_split_keep_time_order():
    s = series(10, times=tuple(f"t{i}" for i in range(10)), interval_s=300, source="s")
    part = s.slice(2, 5)
    assert len(part) == 3 and part.times == ("t2", "t3", "t4") and part.interval_s == 300
    np.testing.assert_array_equal(part.tm, s.tm[2:5])
    np.testing.assert_array_equal(s.scaled(0.5).tm, s.tm / 2)
    train, validation, test = s.split_by_fraction(0.6, 0.2)
    assert (len(train), len(validation), len(test)) == (6, 2, 2)
    assert train.times[-1] == "t5" and validation.times == ("t6", "t7")
    assert test.times == ("t8", "t9")
    assert [len(p) for p in s.split_by_fraction(0.7)] == [7, 0, 3]
    for bad in [(0, 0), (0.8, 0.2), (1.2, 0), (0.5, -0.1)]:
        with pytest.raises(TrafficError, match="train"):
            s.split_by_fraction(*bad)
    with pytest.raises(TrafficError, match="scale factor"):
        s.scaled(-1)


def test_aligned_to_reorders_to_the_graph():
    graph = load_topology("linear:n=3")  # nodes s1, s2, s3
    s = series(2, nodes=("s3", "s1", "s2"))
    aligned = s.aligned_to(graph)
    assert aligned.nodes == ("s1", "s2", "s3")
    assert aligned.tm[0, 0, 2] == s.tm[0, 1, 0]  # s1 -> s3
    for t, i, j in np.ndindex(*s.tm.shape):
        a, b = aligned.nodes.index(s.nodes[i]), aligned.nodes.index(s.nodes[j])
        assert aligned.tm[t, a, b] == s.tm[t, i, j]


def test_aligned_to_names_the_nodes_missing_on_each_side():
    with pytest.raises(TrafficError) as error:
        series(1, nodes=("s1", "s2", "x9"), source="f.tm.npz").aligned_to(
            load_topology("linear:n=3"))
    assert str(error.value) == ("f.tm.npz: does not match linear-3: no traffic for topology "
                                "node(s) 's3'; node(s) 'x9' not in linear-3")


# -- the .tm.npz format --------------------------------------------------------------------

def test_save_and_load_round_trip(tmp_path):
    s = series(3, times=("20040301-0000", "20040301-0005", "20040301-0010"), interval_s=300)
    path = save_traffic(s, tmp_path / "sub" / "x.tm.npz")
    assert path == tmp_path / "sub" / "x.tm.npz" and list(path.parent.iterdir()) == [path]
    with np.load(path) as raw:
        assert raw["tm"].dtype == np.float32 and int(raw["interval_s"]) == 300
    back = load_traffic(path)
    np.testing.assert_allclose(back.tm, s.tm, rtol=1e-6)
    assert (back.nodes, back.times, back.interval_s) == (s.nodes, s.times, 300)
    assert back.source == str(path)
    back = load_traffic(save_traffic(series(2), tmp_path / "y.tm.npz"))
    assert back.times == () and back.interval_s is None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_saved_series_have_the_permissions_of_the_umask(tmp_path, umask, mode):
    """Like any file the user writes (a temporary file is created 0600)."""
    old = os.umask(umask)
    try:
        path = save_traffic(series(2), tmp_path / "x.tm.npz")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


GOOD = {"tm": np.zeros((2, 2, 2), np.float32), "nodes": np.array(["A", "B"])}


@pytest.mark.parametrize("arrays, message", [
    ({"nodes": GOOD["nodes"]}, "missing key 'tm'"),
    ({"tm": GOOD["tm"]}, "missing key 'nodes'"),
    ({**GOOD, "tm": np.zeros((2, 2))}, r"shape \[T, N, N\]"),
    ({**GOOD, "nodes": np.array(["A", "B", "C"])}, "2x2 but there are 3 nodes"),
    ({**GOOD, "tm": -np.ones((1, 2, 2))}, "negative"),
    ({**GOOD, "tm": np.full((1, 2, 2), np.inf)}, "non-finite"),
    ({**GOOD, "nodes": np.array([{"a": 1}], dtype=object)}, "not a .tm.npz file"),
])
def test_load_rejects_bad_files(tmp_path, arrays, message):
    path = write_npz(tmp_path / "bad.tm.npz", **arrays)
    with pytest.raises(TrafficError, match=message) as error:
        load_traffic(path)
    assert str(error.value).startswith(str(path))


def test_load_drops_a_diagonal_and_rejects_non_npz(tmp_path):
    tm = np.ones((1, 2, 2))
    loaded = load_traffic(write_npz(tmp_path / "d.tm.npz", tm=tm, nodes=GOOD["nodes"]))
    assert loaded.tm[0].tolist() == [[0, 1], [1, 0]]
    (tmp_path / "text.tm.npz").write_text("hello")
    with pytest.raises(TrafficError, match="not a .tm.npz file"):
        load_traffic(tmp_path / "text.tm.npz")
    with pytest.raises(TrafficError, match="no such file"):
        load_traffic(tmp_path / "absent.tm.npz")


# -- SNDlib demand files -------------------------------------------------------------------

def test_sndlib_demand_files_become_a_time_ordered_series():
    s = read_sndlib_demands(sorted(DEMANDS.glob("*.xml"), reverse=True))
    assert s.nodes == ("A", "B", "C")
    assert s.times == ("20040301-0000", "20040301-0005", "20040301-0010")
    assert s.interval_s == 300
    assert s.tm[0].tolist() == [[0, 1.5, 0.125], [2.25, 0, 0], [0, 0, 0]]
    assert s.valid_mask.tolist() == [True, False, True]  # the all-zero file is missing data
    fixed = read_sndlib_demands(DEMANDS.glob("*.xml"), nodes=["C", "B", "A"])
    assert fixed.tm[0, 2, 1] == 1.5  # A -> B
    with pytest.raises(TrafficError, match=r"demand A -> B: unknown node\(s\) 'A'"):
        read_sndlib_demands(DEMANDS.glob("*.xml"), nodes=["B", "C"])


def demand_xml(unit: str = "KBITPERSEC", value: str = "2500", meta_time: str = "") -> str:
    return f"""<?xml version="1.0"?>
<network xmlns="http://sndlib.zib.de/network" version="1.0">
 <meta><unit>{unit}</unit>{meta_time}</meta>
 <demands><demand id="X_Y"><source>X</source><target>Y</target>
  <demandValue>{value}</demandValue></demand></demands>
</network>"""


def test_sndlib_units_meta_time_and_errors(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(demand_xml(meta_time="<time>2005-05-04 15:00</time>"))
    s = read_sndlib_demands([path])
    assert s.tm[0, 0, 1] == 2.5 and s.times == ("20050504-1500",) and s.nodes == ("X", "Y")
    for text, message in [(demand_xml(unit="PACKETS"), "unknown unit 'PACKETS'"),
                          (demand_xml(value="lots"), "demandValue is not a number"),
                          (demand_xml(value="-1"), "must be finite and >= 0"),
                          ("<network/>", "no <demands> element"),
                          ("<network>", "not valid XML")]:
        path.write_text(text)
        with pytest.raises(TrafficError, match=message) as error:
            read_sndlib_demands([path])
        assert str(error.value).startswith(str(path))
    with pytest.raises(TrafficError, match="not a directory, .tgz or .zip"):
        read_sndlib_archive(path)
    with pytest.raises(TrafficError, match="no such file"):
        read_sndlib_archive(tmp_path / "absent.tgz")


def test_sndlib_archives_tgz_and_zip(tmp_path):
    with tarfile.open(tmp_path / "d.tgz", "w:gz") as archive:
        archive.add(DEMANDS, arcname="directed-tiny")
    with zipfile.ZipFile(tmp_path / "d.zip", "w") as archive:
        for path in DEMANDS.glob("*.xml"):
            archive.write(path, f"x/{path.name}")
    expected = read_sndlib_archive(DEMANDS)
    for name in ("d.tgz", "d.zip"):
        s = read_sndlib_archive(tmp_path / name)
        np.testing.assert_array_equal(s.tm, expected.tm)
        assert s.times == expected.times
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrafficError, match="no SNDlib demand files found"):
        read_sndlib_archive(empty)


# -- synthetic -----------------------------------------------------------------------------

def test_synthetic_is_seeded():
    graph = load_topology("abilene")
    a, b = (synthetic_traffic(graph, 50, seed=7) for _ in range(2))
    np.testing.assert_array_equal(a.tm, b.tm)
    assert not np.array_equal(a.tm, synthetic_traffic(graph, 50, seed=8).tm)
    assert a.nodes == tuple(graph.nodes) and a.interval_s == 300 and len(a.times) == 50
    assert not np.einsum("tii->ti", a.tm).any() and (a.tm[:, ~np.eye(12, dtype=bool)] > 0).all()


def test_synthetic_scale_is_load_times_capacity_over_mean_hops():
    graph = load_topology("ring:n=6")  # 12 x 1000 Mbit/s; mean min-hop count 9/5
    day = synthetic_traffic(graph, 288, seed=1, noise=0, bursts_per_day=0)
    totals = day.tm.sum(axis=(1, 2))
    assert totals.mean() == pytest.approx(0.3 * 12000 / 1.8)
    assert totals[144] > 2.5 * totals[0]  # noon vs midnight, amplitude 0.5
    assert synthetic_traffic(graph, 288, seed=1, load=0.6, noise=0,
                             bursts_per_day=0).tm.sum() == pytest.approx(2 * totals.sum())


def test_synthetic_only_between_host_nodes_and_with_bursts():
    graph = load_topology("fat-tree")
    s = synthetic_traffic(graph, 20, seed=3)
    hosts = np.array([h for _, h in graph.nodes(data="hosts")])
    assert s.tm[:, ~hosts].sum() == 0 and s.tm[:, :, ~hosts].sum() == 0
    calm = synthetic_traffic(graph, 288, seed=3, noise=0, bursts_per_day=0)
    bursty = synthetic_traffic(graph, 288, seed=3, noise=0, bursts_per_day=50)
    assert (bursty.tm >= calm.tm - 1e-9).all() and (bursty.tm > calm.tm + 1e-9).any()


@pytest.mark.parametrize("spec, kwargs, message", [
    ("linear:n=2", {"steps": 0}, "steps and interval_s must be >= 1"),
    ("linear:n=2", {"load": 0}, "load must be positive"),
])
def test_synthetic_rejects_bad_arguments(spec, kwargs, message):
    with pytest.raises(TrafficError, match=message):
        synthetic_traffic(load_topology(spec), **{"steps": 5, "seed": 1, **kwargs})


def test_synthetic_needs_two_host_nodes(tmp_path):
    path = tmp_path / "one.json"
    path.write_text('{"nodes": ["A", {"name": "B", "hosts": false}], '
                    '"links": [{"src": "A", "dst": "B", "capacity_mbps": 1}]}')
    with pytest.raises(TrafficError, match="at least 2 nodes with hosts"):
        synthetic_traffic(load_topology(str(path)), 5, seed=1)


# -- the real shared series ----------------------------------------------------------------

def shared(name: str) -> Path:
    path = TRAFFIC / name
    if not path.exists():
        pytest.skip(f"shared traffic data absent: {path} (set RYUTE_DATA)")
    return path


@pytest.mark.parametrize("name, topology, length, interval, missing", [
    ("abilene-20040301-20040314.tm.npz", "abilene", 4032, 300, 0),
    ("geant-20050504-20050507.tm.npz", "geant", 324, 900, 2),
])
def test_real_series_align_with_the_builtins(name, topology, length, interval, missing):
    s = load_traffic(shared(name)).aligned_to(load_topology(topology))
    assert (len(s), s.interval_s, int((~s.valid_mask).sum())) == (length, interval, missing)
    assert list(s.times) == sorted(s.times)
    train, _, test = s.split_by_fraction(0.8)
    assert train.times[-1] < test.times[0]


def test_zoo_series_align_with_the_zoo_topologies():
    folder = TRAFFIC / "zoo"
    files = sorted(folder.glob("*.tm.npz"))
    if not files:
        pytest.skip(f"shared zoo traffic absent: {folder} (set RYUTE_DATA)")
    aligned = 0
    for path in files:
        try:
            graph = load_topology(str(shared_data_dir() / "topologies" / "zoo" /
                                      path.name.replace(".tm.npz", ".json")))
        except TopologyError:
            continue
        assert len(load_traffic(path).aligned_to(graph)) > 0
        aligned += 1
    assert aligned >= 0.95 * len(files)


# -- CLI -----------------------------------------------------------------------------------

def test_cli_synthetic_and_show(tmp_path, capsys):
    out = tmp_path / "ring.tm.npz"
    args = ["data", "synthetic", "--topology", "ring", "--param", "n=4", "--steps", "12",
            "--seed", "5", "--out", str(out), "--interval", "900", "--load", "0.5"]
    assert main(args) == 0
    assert f"wrote {out}: 12 matrices, 4 nodes" in capsys.readouterr().out
    s = load_traffic(out)
    assert s.interval_s == 900 and s.nodes == ("s1", "s2", "s3", "s4")
    expected = synthetic_traffic(load_topology("ring:n=4"), 12, 5, 900, 0.5)
    np.testing.assert_allclose(s.tm, expected.tm, rtol=1e-6)
    assert main(["data", "show", str(out)]) == 0
    assert "12 matrices x 4 nodes, interval 900 s" in capsys.readouterr().out


def test_cli_import_sndlib(tmp_path, capsys):
    out = tmp_path / "tiny.tm.npz"
    topology = FIXTURES / "sndlib-network.xml"
    assert main(["data", "import-sndlib", str(DEMANDS), "--topology", str(topology),
                 "--out", str(out)]) == 0
    assert "3 matrices, 3 nodes, 2 with measurements" in capsys.readouterr().out
    s = load_traffic(out)
    assert s.nodes == ("A", "B", "C") and s.interval_s == 300 and len(s.times) == 3
    assert main(["data", "import-sndlib", str(DEMANDS), "--topology", "ring",
                 "--out", str(tmp_path / "no.tm.npz")]) == 2
    assert "does not match ring-6" in capsys.readouterr().err
    assert not (tmp_path / "no.tm.npz").exists()


# -- load_series: the one resolver of a traffic argument ----------------------------------------

def test_load_series_resolves_every_kind_of_traffic_argument(tmp_path):
    from topologies.traffic import load_series

    graph = load_topology("abilene")
    week = load_series("synthetic", graph)
    assert len(week) == 7 * 288 and week.nodes == tuple(graph.nodes)
    short = load_series("synthetic:steps=12,seed=3,load=0.5", graph, steps=99)
    assert len(short) == 12  # the spec's own steps win over the caller's default
    assert np.array_equal(short.tm, synthetic_traffic(graph, 12, 3, load=0.5).tm)
    assert len(load_series("synthetic", graph, steps=5, seed=1)) == 5
    saved = save_traffic(short, tmp_path / "s.tm.npz")
    for spec in (saved, str(saved)):  # files hold float32
        assert np.allclose(load_series(spec, graph).tm, short.tm, rtol=1e-6)
    assert load_series(short, graph).nodes == short.nodes


@pytest.mark.parametrize("spec, message", [
    ("synthetic:bursts=2", "no parameter bursts"),
    ("synthetic:steps=0", "steps"),
    ("synthetic:steps", "key=value"),
])
def test_load_series_refuses_a_bad_synthetic_spec_in_one_line(spec, message):
    from topologies.traffic import load_series

    with pytest.raises(ValueError, match=message):
        load_series(spec, load_topology("abilene"))

"""Bring your own data (issue 17): the documented examples load, and flow exports become OD
matrices by ingress and egress node.

The flow samples in ``docs/examples/flows/`` are hand-written in the collectors' documented
formats (nfdump's ``-o csv`` header and field order from its ``output_csv.c``; pmacct's print
plugin CSV header of the aggregated primitives and its JSON keys), not captured from a network:
each record's comment in ``docs/formats.md`` says what it exercises.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lab.cli import main
from topologies.catalog import load_topology
from topologies.flows import NodeMap, _spread, import_flows
from topologies.traffic import TrafficError, load_traffic

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
TOPOLOGY = EXAMPLES / "example5.json"
MAPPING = EXAMPLES / "mapping.json"
FLOWS = EXAMPLES / "flows"
NODES = ["ams", "fra", "lon", "par", "zrh"]

#: What the samples hold, in Mbit/s per 5-minute interval (docs/formats.md explains each).
EXPECTED = {
    "20240301-0000": {("ams", "fra"): 2.0, ("ams", "lon"): 1.0, ("fra", "zrh"): 2.0},
    "20240301-0005": {("fra", "zrh"): 2.0, ("lon", "ams"): 1.0},
    "20240301-0010": {("ams", "par"): 1.0, ("zrh", "ams"): 2.0},
}
DROPPED = {"exported away from its ingress": 1, "inside one node": 1, "no egress node": 1}


def _as_dicts(series) -> dict[str, dict[tuple[str, str], float]]:
    return {time: {(series.nodes[i], series.nodes[j]): round(float(series.tm[t, i, j]), 9)
                   for i, j in zip(*np.nonzero(series.tm[t]))}
            for t, time in enumerate(series.times)}


def test_the_documented_examples_load():
    graph = load_topology(TOPOLOGY)
    assert list(graph.nodes) == NODES and graph.number_of_edges() == 14
    assert graph.nodes["zrh"]["dpid"] == 5 and graph.edges["ams", "fra"]["capacity_mbps"] == 40000
    series = load_traffic(EXAMPLES / "example5.tm.npz").aligned_to(graph)
    assert len(series) == 24 and series.interval_s == 300 and series.valid_mask.all()
    assert NodeMap.from_file(MAPPING, NODES).router("192.0.2.4") == "par"


@pytest.mark.parametrize("fmt, sources", [
    ("nfdump", [FLOWS / "nfdump.csv"]),
    ("pmacct", [FLOWS / "pmacct"]),  # CSV, one file per interval, time from the file name
    ("pmacct", [FLOWS / "pmacct.json"]),  # JSON lines, time from stamp_inserted
])
def test_flow_exports_become_the_od_matrices_they_hold(fmt, sources):
    series, report = import_flows(fmt, sources, MAPPING, NODES)
    assert series.nodes == tuple(NODES) and series.interval_s == 300
    assert _as_dicts(series) == EXPECTED
    assert dict(report.dropped) == DROPPED
    assert report.kept_bytes == pytest.approx(412.5e6)  # 11 Mbit/s over 300 s


def test_a_longer_interval_sums_the_shorter_ones():
    series, _ = import_flows("nfdump", [FLOWS / "nfdump.csv"], MAPPING, NODES, interval_s=900)
    assert series.times == ("20240301-0000",)
    total = sum(sum(matrix.values()) for matrix in EXPECTED.values())
    assert series.tm.sum() == pytest.approx(total / 3)  # the same bytes over three times as long


def test_sampling_scales_the_bytes():
    plain, _ = import_flows("nfdump", [FLOWS / "nfdump.csv"], MAPPING, NODES)
    sampled, _ = import_flows("nfdump", [FLOWS / "nfdump.csv"], MAPPING, NODES,
                              sampling_rate=100)
    np.testing.assert_allclose(sampled.tm, 100 * plain.tm)


def test_a_record_is_spread_over_the_intervals_it_spans():
    assert list(_spread(200, 500, 300)) == [(0, pytest.approx(1 / 3)), (1, pytest.approx(2 / 3))]
    assert list(_spread(310, 310, 300)) == [(1, 1.0)]
    assert list(_spread(0, 600, 300)) == [(0, 0.5), (1, 0.5)]


def test_the_longest_prefix_wins_and_both_address_families_map():
    mapping = NodeMap.from_file(MAPPING, NODES)
    assert mapping.prefix("203.0.113.150") == "par" and mapping.prefix("203.0.113.10") == "zrh"
    assert mapping.prefix("2001:db8:3::5") == "lon" and mapping.prefix("100.64.0.1") is None
    assert mapping.router("0.0.0.0") is None and mapping.router("::") is None


def test_the_cli_imports_each_format(tmp_path, capsys):
    for fmt, source in (("nfdump", FLOWS / "nfdump.csv"), ("pmacct", FLOWS / "pmacct.json")):
        out = tmp_path / f"{fmt}.tm.npz"
        assert main(["data", "import", "--format", fmt, str(source), "--topology", str(TOPOLOGY),
                     "--mapping", str(MAPPING), "--out", str(out)]) == 0
        assert _as_dicts(load_traffic(out)) == EXPECTED
        printed = capsys.readouterr().out
        assert "3 matrices of 300 s from 20240301-0000" in printed and "84.4 %" in printed


def test_the_cli_imports_sndlib_too(tmp_path):
    out = tmp_path / "sndlib.tm.npz"
    fixtures = Path(__file__).resolve().parent / "fixtures"
    assert main(["data", "import", "--format", "sndlib", str(fixtures / "sndlib-demands"),
                 "--topology", str(fixtures / "sndlib-network.xml"), "--out", str(out)]) == 0
    assert load_traffic(out).nodes == ("A", "B", "C")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("mapping, message", [
    ({"routers": {"192.0.2.1": "mars"}}, "maps to 'mars', not a node"),
    ({"prefixes": {"10.0.0.0/33": "ams"}}, "'10.0.0.0/33' is not a valid prefix"),
    ({"routers": {"not-an-address": "ams"}}, "is not a valid router address"),
    ({"nodes": {}}, "expected an object with 'routers' and/or 'prefixes'"),
    ([], "expected an object"),
])
def test_a_bad_mapping_is_one_line_naming_the_file(tmp_path, capsys, mapping, message):
    path = _write(tmp_path, "map.json", json.dumps(mapping))
    assert main(["data", "import", "--format", "nfdump", str(FLOWS / "nfdump.csv"),
                 "--topology", str(TOPOLOGY), "--mapping", str(path),
                 "--out", str(tmp_path / "x.tm.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and message in err[0]
    assert not (tmp_path / "x.tm.npz").exists()


NFDUMP_HEADER = (FLOWS / "nfdump.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("fmt, name, text, message", [
    ("nfdump", "a.csv", "date,bytes\n1,2\n", "not nfdump CSV (nfdump -o csv): no column ts"),
    ("nfdump", "b.csv", NFDUMP_HEADER + "\n2024-03-01 00:00:00,x\n", "b.csv:2: 2 fields"),
    ("nfdump", "c.csv", NFDUMP_HEADER + "\n" + ",".join(
        ["yesterday"] * len(NFDUMP_HEADER.split(","))) + "\n", "c.csv:2: 'yesterday' is not a"),
    ("pmacct", "d.csv", "SRC_IP,DST_IP,PACKETS,BYTES\n198.51.100.1,198.51.100.70,1,10\n",
     "the record has no time"),
    ("pmacct", "e.csv", "DST_IP,PACKETS,BYTES\n198.51.100.70,1,10\n", "aggregate peer_src_ip"),
    ("pmacct", "f-20240301-0000.csv", "SRC_IP,DST_IP,PACKETS,BYTES\n198.51.100.1,"
     "198.51.100.70,1,-5\n", "'-5' is not a byte count"),
    ("pmacct", "g.json", '{"ip_src": "198.51.100.1", "bytes": 1, "stamp_inserted": '
     '"2024-03-01 00:00:00"}\n[1\n', "g.json:2: not a JSON"),
    ("pmacct", "h-20240301-0000.csv", "SRC_IP,DST_IP,PACKETS,BYTES\n100.64.0.1,100.64.0.2,1,9\n",
     "no flow maps to an OD pair"),
])
def test_bad_flow_files_are_one_line_naming_the_file(tmp_path, capsys, fmt, name, text, message):
    path = _write(tmp_path, name, text)
    assert main(["data", "import", "--format", fmt, str(path), "--topology", str(TOPOLOGY),
                 "--mapping", str(MAPPING), "--out", str(tmp_path / "x.tm.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_missing_sources_and_options_are_one_line(tmp_path, capsys):
    base = ["data", "import", "--topology", str(TOPOLOGY), "--out", str(tmp_path / "x.tm.npz")]
    (tmp_path / "empty").mkdir()
    for extra, message in ((["--format", "nfdump", str(FLOWS / "nfdump.csv")], "needs --mapping"),
                           (["--format", "nfdump", str(tmp_path / "absent.csv"), "--mapping",
                             str(MAPPING)], "no such file or directory"),
                           (["--format", "pmacct", str(tmp_path / "empty"), "--mapping",
                             str(MAPPING)], "an empty folder"),
                           (["--format", "sndlib", "a", "b"], "takes one folder or archive")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_an_aligned_import_trains_on_the_topology_it_names(tmp_path):
    """What the importer writes is a series like any other: it aligns with the topology."""
    series, _ = import_flows("nfdump", [FLOWS / "nfdump.csv"], MAPPING, NODES)
    assert series.aligned_to(load_topology(TOPOLOGY)).nodes == tuple(NODES)
    with pytest.raises(TrafficError, match="not in abilene"):
        series.aligned_to(load_topology("abilene"))

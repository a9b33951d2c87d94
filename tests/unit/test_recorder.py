"""``--record DIR``: the controller's measured matrices as rotated, bounded ``.tm.npz`` files
(real files), ``ryute data join`` of them, and the control plane recording its intervals."""
from __future__ import annotations

import numpy as np
import pytest

from controller.recorder import Recorder
from lab.cli import main
from topologies.traffic import join_series, load_traffic

NODES = ("A", "B", "C")
START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def matrix(t: int) -> np.ndarray:
    m = np.full((3, 3), float(t + 1))
    np.fill_diagonal(m, 0.0)
    return m


def test_intervals_rotate_into_bounded_files_that_read_back(tmp_path):
    recorder = Recorder(tmp_path, 300, per_file=4, max_files=2, flush_every=2)
    for t in range(11):
        recorder.add(NODES, matrix(t) if t != 5 else None, START + 300 * t)
    files = sorted(tmp_path.glob("ryute-*.tm.npz"))
    assert len(files) == 2  # 3 files written (4 + 4 + 2 so far), the oldest deleted
    second, third = (load_traffic(f) for f in files)
    assert len(second) == 4 and len(third) == 2  # the third was flushed after 2
    assert second.nodes == NODES and second.interval_s == 300
    assert second.tm[0, 0, 1] == 5.0 and not second.tm[1].any()  # interval 5: no matrix
    assert not second.valid_mask[1] and second.valid_mask[0]
    assert third.times == ("20231114-2253", "20231114-2258")
    assert files[0].name == "ryute-20231114-223320.tm.npz"


def test_a_topology_change_starts_a_new_file(tmp_path):
    recorder = Recorder(tmp_path, 300, per_file=10, flush_every=1)
    recorder.add(NODES, matrix(0), START)
    recorder.add(NODES[:2], np.ones((2, 2)) - np.eye(2), START + 300)
    parts = [load_traffic(f) for f in sorted(tmp_path.glob("*.tm.npz"))]
    assert [p.nodes for p in parts] == [NODES, NODES[:2]]


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create"):
        Recorder(blocker / "sub", 300)


def test_data_join_makes_one_series_in_time_order(tmp_path, capsys):
    recorder = Recorder(tmp_path / "rec", 300, per_file=3, flush_every=1)
    for t in range(7):
        recorder.add(NODES, matrix(t), START + 300 * t)
    out = tmp_path / "all.tm.npz"
    assert main(["data", "join", str(tmp_path / "rec"), "--out", str(out)]) == 0
    series = load_traffic(out)
    assert len(series) == 7 and series.tm[:, 0, 1].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert "7 matrices" in capsys.readouterr().out
    # joining a file with itself keeps each interval once
    assert len(join_series([out, out])) == 7


def test_data_join_refuses_other_nodes_in_one_line(tmp_path, capsys):
    recorder = Recorder(tmp_path, 300, per_file=10, flush_every=1)
    recorder.add(NODES, matrix(0), START)
    recorder.add(NODES[:2], np.ones((2, 2)) - np.eye(2), START + 300)
    assert main(["data", "join", str(tmp_path), "--out", str(tmp_path / "x.tm.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "other nodes" in err and len(err.splitlines()) == 1


def test_the_control_plane_records_every_closed_interval(tmp_path):
    from fake_switch import FakeNetwork

    net = FakeNetwork("ring:n=4", record_dir=str(tmp_path / "rec"), poll_interval_s=2.0)
    net.connect()
    net.lldp_round()
    net.plane.recorder.flush_every = 1
    for _ in range(3):
        net.advance(2.0)
        net.poll()  # every switch answers: the interval closes and is recorded
    (path,) = sorted((tmp_path / "rec").glob("ryute-*.tm.npz"))
    series = load_traffic(path)
    assert len(series) == 3 and series.interval_s == 2
    assert series.nodes == tuple(str(n) for n in net.plane.view.state.path_set.nodes)

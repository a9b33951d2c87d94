"""Odd answers and odd files give one line and exit code 2, never a traceback (issue 15)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from lab.cli import main


class Impostor(BaseHTTPRequestHandler):
    """A server on the controller's URL that answers something else."""
    body = b"{}"

    def do_GET(self):  # noqa: N802 - http.server's name
        # read the request's body first, as a real server does: answering (and closing) with
        # it unread makes the kernel reset the connection, and the client sees a reset instead
        # of the answer (an intermittent failure of the 100 kB case)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_PUT = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def impostor():
    server = HTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "ftp//nowhere", "http://[::1"])
def test_a_bad_url_is_one_line(url, capsys):
    for command in (["status"], ["decisions"], ["mode", "active"]):
        assert "bad controller URL" in one_line_error([*command, "--url", url], capsys)


@pytest.mark.parametrize("body, message", [
    (b'{"hello": 1}', "not the answer of a ryute controller"),
    (b'{"health": [], "decisions": 3, "mode": {}}', "not the answer of a ryute controller"),
    (b"[1, 2]", "JSON that is not an object"),
    (b"<html>hello</html>", "not JSON"),
    (b"[" * 100_000, "not JSON"),
])
def test_another_server_is_one_line(impostor, body, message, capsys):
    impostor.RequestHandlerClass.body = body
    url = f"http://127.0.0.1:{impostor.server_port}"
    for command in (["status"], ["decisions"], ["mode", "active", "--token", "t"]):
        assert message in one_line_error([*command, "--url", url], capsys)


@pytest.mark.parametrize("record, message", [
    ({"seq": 1, "predicted_mlu": {"fallback": "high", "agent": 0.5}}, "not a number"),
    ({"seq": 1, "predicted_mlu": {"fallback": 0.4}, "measured_mlu": [1]}, "not a number"),
    ({"predicted_mlu": {"fallback": 0.4, "agent": 0.5}}, "no integer seq"),
    ({"seq": 1, "predicted_mlu": {"fallback": 0.4}, "reasons": "stale"}, "list of strings"),
    ([1], "not a JSON object"),
    ({"seq": 1, "predicted_mlu": [0.4]}, "no predicted_mlu.fallback"),
])
def test_a_shadow_report_of_odd_records_is_one_line(tmp_path, record, message, capsys):
    log = tmp_path / "decisions.jsonl"
    good = {"seq": 0, "predicted_mlu": {"fallback": 0.4, "agent": 0.3}, "reasons": []}
    log.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    for extra in ([], ["--json"], ["--plot", str(tmp_path / "p.png")]):
        err = one_line_error(["shadow-report", str(log), *extra], capsys)
        assert f"{log}:2: not a decision record (" in err and message in err


def test_a_shadow_report_of_good_records_still_works(tmp_path, capsys):
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps({"seq": i, "predicted_mlu": {"fallback": 0.4, "agent": 0.3},
                                       "measured_mlu": 0.35, "reasons": []}) + "\n"
                           for i in range(3)))
    assert main(["shadow-report", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agent_better"] == 3


# -- topology and traffic files ------------------------------------------------------------
TOPOLOGY = {"name": "t", "nodes": ["a", "b", "c"],
            "links": [{"src": "a", "dst": "b", "capacity_mbps": 100},
                      {"src": "b", "dst": "a", "capacity_mbps": 100},
                      {"src": "b", "dst": "c", "capacity_mbps": 100},
                      {"src": "c", "dst": "b", "capacity_mbps": 100}]}


def _with_link(**fields):
    links = [dict(link) for link in TOPOLOGY["links"]]
    links[0].update(fields)
    return {**TOPOLOGY, "links": links}


@pytest.mark.parametrize("document, message", [
    ({**TOPOLOGY, "coordinates_lon_lat": [[1, 2]]}, "coordinates_lon_lat must be an object"),
    ({**TOPOLOGY, "links": TOPOLOGY["links"] + [{"src": "a", "dst": "b", "capacity_mbps": 10,
                                                 "igp_weight": "1"}]}, None),
    ({**TOPOLOGY, "links": [{**TOPOLOGY["links"][0], "igp_weight": 2}] + TOPOLOGY["links"]
      + [{"src": "a", "dst": "b", "capacity_mbps": 10, "igp_weight": "x"}]},
     "igp_weight is not a number"),
    (_with_link(capacity_mbps=1e-320), "capacity_mbps must be in 0.001..1e+09"),
    (_with_link(capacity_mbps=1e300), "capacity_mbps must be in"),
    (_with_link(delay=[1]), "delay is not a number"),
    (_with_link(delay=-1), "delay must be positive"),
])
def test_odd_topology_files_are_one_line(tmp_path, capsys, document, message):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(document))
    if message is None:  # a string that is a number is one: accepted, and a number afterwards
        from topologies.catalog import load_topology

        assert load_topology(path)["a"]["b"]["igp_weight"] == 1.0
        return
    err = one_line_error(["topology", "show", str(path)], capsys)
    assert str(path) in err and message in err


def test_a_deeply_nested_topology_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in one_line_error(["topology", "show", str(path)], capsys)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: (np.save(p.with_suffix(".npy"), [[1.0]]),
                p.with_suffix(".npy").rename(p), p)[-1], "not a .tm.npz file"),
    (lambda p: (p.write_bytes(b""), p)[-1], "not a .tm.npz file"),
    (lambda p: _npz(p, tm=np.zeros((2, 2, 2)), nodes=["a", "b"],
                    interval_s=[300, 300]), "interval_s must be one positive integer"),
    (lambda p: _npz(p, tm=np.zeros((2, 2, 2)), nodes=["a", "b"],
                    interval_s=-5), "interval_s must be one positive integer"),
    (lambda p: _npz(p, tm=np.zeros((2, 2, 2), dtype=[("x", "f8"), ("y", "i4")]),
                    nodes=["a", "b"]), "tm must hold numbers"),
    (lambda p: _npz(p, tm=np.array([["a"]]), nodes=["a"]),
     "tm must hold numbers"),
])
def test_odd_traffic_files_are_one_line(tmp_path, capsys, make, message):
    path = make(tmp_path / "odd.tm.npz")
    err = one_line_error(["data", "show", str(path)], capsys)
    assert str(path) in err and message in err


def test_a_traffic_member_inflating_beyond_the_limit_is_refused_from_the_directory(tmp_path,
                                                                                 capsys):
    """A 6 GiB member would be allocated whole by np.load: the zip directory says so first.
    The directory entry is written as a bomb would have it (no 6 GiB are compressed here)."""
    import zipfile

    path = tmp_path / "bomb.tm.npz"
    _npz(path, tm=np.zeros((1, 2, 2)), nodes=["a", "b"])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("tm.npy")
    central = data.rfind(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(b"tm.npy")] != b"tm.npy":
        central = data.rfind(b"PK\x01\x02", 0, central)
    # a zip64 entry would be needed above 4 GiB; 0xFFFFFFFE bytes is already over the limit
    data[central + 24:central + 28] = (0xFFFFFFFE).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert info.file_size < 1000
    err = one_line_error(["data", "show", str(path)], capsys)
    assert "member tm.npy inflates to 4294967294 bytes; at most" in err


# -- found by the fuzz suites (tests/unit/test_fuzz_readers.py) ------------------------------
def break_deflate(path, member: str) -> None:
    """Overwrite ``member``'s compressed bytes with an invalid deflate stream (reserved block
    type), as a damaged disk leaves it; the zip directory stays intact."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(data[info.header_offset + at:info.header_offset + at + 2],
                                          "little") for at in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    data[start:start + info.compress_size] = b"\xff" * info.compress_size
    path.write_bytes(bytes(data))


def test_a_traffic_file_with_a_damaged_deflate_stream_is_one_line(tmp_path, capsys):
    path = tmp_path / "damaged.tm.npz"
    np.savez_compressed(path, tm=np.zeros((2, 2, 2)), nodes=["a", "b"])
    break_deflate(path, "tm.npy")
    err = one_line_error(["data", "show", str(path)], capsys)
    assert str(path) in err and "not a .tm.npz file" in err


def test_a_zoo_node_with_an_empty_coordinate_is_one_line(tmp_path, capsys):
    path = tmp_path / "empty-lat.graphml"
    path.write_text(
        '<?xml version="1.0"?><graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
        '<key attr.name="Longitude" attr.type="string" for="node" id="b"/>'
        '<key attr.name="Latitude" attr.type="string" for="node" id="c"/>'
        '<graph edgedefault="undirected"><node id="0"><data key="b">0</data>'
        '<data key="c"></data></node></graph></graphml>')
    err = one_line_error(["topology", "show", str(path)], capsys)
    assert str(path) in err and "coordinates must be [lon, lat]" in err


def test_a_traffic_file_of_an_unknown_zip_version_is_one_line(tmp_path, capsys):
    path = tmp_path / "future.tm.npz"
    np.savez(path, tm=np.zeros((2, 2, 2)), nodes=["a", "b"])
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 6:central + 8] = (173).to_bytes(2, "little")  # version needed: 17.3
    path.write_bytes(bytes(data))
    err = one_line_error(["data", "show", str(path)], capsys)
    assert str(path) in err and "zip file version 17.3" in err

"""The operator's views (ryute status, links, paths, traffic) over real HTTP: against a
``ryute controller`` process, and against the real REST resources of a control plane whose
switches are fake OpenFlow switches (some connected, some missing, statistics polled)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import pytest
from conftest import ROOT
from fake_switch import FakeNetwork

from controller.resources import Resources
from controller.rest import RestApi
from lab.cli import main

HEAVY = ("torch", "os_ken", "networkx", "mininet", "numpy", "scipy", "eventlet", "gymnasium",
         "stable_baselines3", "matplotlib")


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_status_imports_nothing_heavy_and_says_which_switches_are_missing(controller):
    process = controller().wait_ready()
    probe = ("import sys, runpy; sys.argv = ['ryute', 'status', '--url', sys.argv[1]]\n"
             "try:\n    runpy.run_module('lab.cli', run_name='__main__')\n"
             "except SystemExit as end:\n    code = end.code\n"
             "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in "
             f"{HEAVY!r}), code)")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", probe, process.url], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    elapsed = time.monotonic() - started
    assert done.stdout.splitlines()[-1] == "HEAVY [] 0", done.stdout + done.stderr
    assert "0 of 12 switches" in done.stdout
    assert "missing     12 switches not connected: ATLAM5, ATLAng" in done.stdout
    assert "MLU         - (no switches connected: nothing measured)" in done.stdout
    assert "0.000" not in done.stdout
    print(f"ryute status, interpreter start included: {elapsed:.2f} s")


@pytest.fixture
def network():
    """Abilene of fake switches, two of them gone after connecting, links discovered, two polls done;
    its REST resources served on loopback."""
    net = FakeNetwork("abilene", poll_interval_s=2.0)
    dpid_of = net.plane.view.dpid_of
    missing = {dpid_of["SNVAng"], dpid_of["LOSAng"]}
    net.connect()
    net.lldp_round()
    for dpid in missing:
        net.disconnect(dpid)
    for _ in range(3):
        net.advance(2.0)
        net.lldp_round()
        net.poll()
    resources = Resources(net.plane, token=lambda: None, decide=lambda: None)
    server = make_server("127.0.0.1", 0, RestApi(resources.routes(), token=lambda: None),
                         handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield net, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_counts_connected_of_expected_switches(network, capsys):
    net, url = network
    code, out, _ = run(capsys, "status", "--url", url)
    assert code == 0
    assert "10 of 12 switches" in out
    assert "missing     2 switches not connected: LOSAng, SNVAng" in out
    assert "(measured without the 2 missing switches)" in out
    code, out, _ = run(capsys, "status", "--url", url, "--json")
    answer = json.loads(out)
    assert answer["expected_switches"] == 12 and answer["missing_switches"] == ["LOSAng",
                                                                               "SNVAng"]


def test_links_table(network, capsys):
    net, url = network
    code, out, _ = run(capsys, "links", "--url", url)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["link", "capacity", "load", "util", "state"]
    rows = [line for line in lines[1:] if " -> " in line and line.split()[-1] in ("up", "DOWN")]
    assert len(rows) == 30
    down = {tuple(row.split()[0:3:2]) for row in rows if row.endswith("DOWN")}
    # the links of the two missing switches are down, the others up
    assert down and all({"SNVAng", "LOSAng"} & set(link) for link in down)
    assert f"30 links (Mbit/s as the switches carry them), {len(down)} down" in out
    code, out, _ = run(capsys, "links", "--url", url, "--json")
    assert len(json.loads(out)["graph_links"]) == 30


def test_paths_per_od_pair(network, capsys):
    net, url = network
    code, out, _ = run(capsys, "paths", "--url", url, "--od", "ATLAng-CHINng")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "ATLAng -> CHINng"
    weights = [float(line.split()[1].rstrip("%")) for line in lines[1:]]
    assert len(weights) >= 2 and sum(weights) == pytest.approx(100, abs=0.5)
    assert lines[1].split()[2] == "ATLAng" and lines[1].split()[-1] == "CHINng"
    code, out, _ = run(capsys, "paths", "--url", url)
    assert out.count(" -> ") == 132
    code, out, _ = run(capsys, "paths", "--url", url, "--od", "ATLAng-CHINng", "--json")
    (pair,) = json.loads(out)["od_pairs"]
    assert (pair["src"], pair["dst"]) == ("ATLAng", "CHINng")
    code, _, err = run(capsys, "paths", "--url", url, "--od", "ATLAng-Nowhere")
    assert code == 2 and err.strip() == ("ryute paths: error: --od ATLAng-Nowhere: no such OD "
                                         "pair (SRC-DST, switch names as in ryute paths)")


def test_traffic_top_pairs(network, capsys):
    net, url = network
    code, out, _ = run(capsys, "traffic", "--url", url)
    assert code == 0 and out == "no traffic measured yet\n"  # fake switches carry no bytes
    state = net.plane.view.state  # a measured matrix, as record_interval pushes it
    matrix = np.zeros((12, 12))
    matrix[0, 1], matrix[3, 2], matrix[5, 7] = 30.0, 50.0, 20.0
    state.push_matrix(matrix * net.plane.view.capacity_scale)
    code, out, _ = run(capsys, "traffic", "--url", url, "--top", "5")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["src", "->", "dst", "rate", "share"]
    assert len(lines) == 7 and lines[-1].startswith("top 5 of 132 OD pairs; total ")
    nodes = [str(n) for n in state.path_set.nodes]
    assert lines[1].split()[:4] == [nodes[3], "->", nodes[2], "50.00"]
    assert lines[1].split()[4] == "50.0%" and lines[3].split()[3] == "20.00"
    assert lines[-1].startswith("top 5 of 132 OD pairs; total 100.00 Mbit/s, measured")
    code, out, _ = run(capsys, "traffic", "--url", url, "--json", "--units", "topology")
    answer = json.loads(out)
    assert answer["units"] == "topology" and len(answer["nodes"]) == 12
    code, _, err = run(capsys, "traffic", "--url", url, "--top", "0")
    assert code == 2 and "--top must be at least 1" in err

"""The README's "Bring your own network" walkthrough, start to end, as a user runs it: a
topology file of a network the catalog does not have, its traffic, the generalist evaluated
on it, a model fine-tuned from the generalist, that model in shadow mode on Open vSwitch
switches (Mininet) with replayed traffic, the shadow report, and the switch to active.
Every step is the project's own command (``lab.cli.main``, what ``ryute`` runs)."""
from __future__ import annotations

import json
import time

import numpy as np

from agents.baselines import fallback_policy
from lab.cli import main
from lab.config import CAPACITY_SCALE
from lab.emulation import replay, wait_until_ready
from lab.replay import ReplayPlan, choose_traffic_scale
from lab.testbed import Testbed
from sim.loads import mlu
from topologies.catalog import load_topology
from topologies.traffic import load_series

TOKEN = "walkthrough-token"
NODES = ["oslo", "bergen", "trondheim", "stavanger", "tromso", "kristiansand", "bodo"]
LINKS = [("oslo", "bergen", 40000), ("oslo", "trondheim", 40000), ("oslo", "stavanger", 10000),
         ("oslo", "kristiansand", 10000), ("bergen", "stavanger", 10000),
         ("bergen", "trondheim", 10000), ("trondheim", "bodo", 10000),
         ("bodo", "tromso", 10000), ("trondheim", "tromso", 2500),
         ("stavanger", "kristiansand", 10000)]


def write_topology(path):
    """Step 1: the README's JSON form, every direction listed."""
    links = [{"src": a, "dst": b, "capacity_mbps": c} for a, b, c in LINKS] + \
            [{"src": b, "dst": a, "capacity_mbps": c} for a, b, c in LINKS]
    path.write_text(json.dumps({"name": "mynet", "nodes": NODES, "links": links}))
    return path


def test_bring_your_own_network_start_to_end(tmp_path, capsys, measure):
    topology = str(write_topology(tmp_path / "mynet.json"))
    assert main(["topology", "show", topology]) == 0
    assert "mynet" in capsys.readouterr().out

    # 2. traffic: none of their own yet, so the generator's (two days of 5-minute matrices)
    traffic = str(tmp_path / "mynet.tm.npz")
    assert main(["data", "synthetic", "--topology", topology, "--steps", "576",
                 "--out", traffic]) == 0

    # 3. the generalist on it, before any training
    before = tmp_path / "generalist.json"
    assert main(["evaluate", "--topology", topology, "--traffic", traffic, "--methods",
                 "agent,invcap,lp_last,lp_pred", "--model", "default", "--last", "20%",
                 "--json", str(before)]) == 0
    generalist = json.loads(before.read_text())
    assert (generalist["paths_k"], generalist["path_method"]) == (8, "te")

    # 4. specialized from the generalist's weights, into a folder that does not exist yet
    model = tmp_path / "models" / "mynet.zip"
    assert main(["train", "--topology", topology, "--traffic", traffic, "--init", "generalist",
                 "--out", str(model), "--epochs", "1", "--log-dir",
                 str(tmp_path / "train")]) == 0
    after = tmp_path / "tuned.json"
    assert main(["evaluate", "--topology", topology, "--traffic", traffic, "--methods",
                 "agent,lp_last", "--model", str(model), "--last", "20%",
                 "--json", str(after)]) == 0
    tuned = json.loads(after.read_text())
    assert (tuned["paths_k"], tuned["path_method"]) == (8, "te")  # it kept the generalist's
    measure("mean ratio on the last 20 %: generalist, fine-tuned, lp_last",
            [_mean(generalist, "agent"), _mean(tuned, "agent"), _mean(tuned, "lp_last")])
    assert _mean(tuned, "agent") < 1.5  # a working model, not a broken file

    # 5. shadow mode on real switches, with the model's own paths, then the report
    log = tmp_path / "decisions.jsonl"
    graph = load_topology(topology)
    with Testbed(topology, poll_interval_s=1.0, api_token=TOKEN, switch_prefix="o",
                 host_prefix="p", log_dir=tmp_path / "testbed",
                 controller_args=("--model", str(model), "--mode", "shadow",
                                  "--decision-log", str(log))) as testbed:
        status = testbed.api.status()
        assert status["model"] and status["mode"] == "shadow"
        plan, n_paths = _plan(graph, testbed, traffic)
        wait_until_ready(testbed, plan, mtu=9000)
        replay(testbed, plan, tmp_path / "replay", 1.0, n_paths)
        capsys.readouterr()  # what the earlier steps printed
        assert main(["shadow-report", str(log), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        measure("shadow report", {k: report[k] for k in list(report)[:6]})
        url = testbed.rest_url
        assert main(["mode", "active", "--url", url, "--token", TOKEN]) == 0
        assert testbed.api.status()["mode"] == "active"
        time.sleep(2.5)  # the next decision records the change
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["mode"] == "shadow" for r in records) >= 5
    assert any(r["predicted_mlu"]["agent"] is not None for r in records if r["mode"] == "shadow")
    assert any(c["to"] == "active" for r in records for c in (r.get("mode_changes") or []))


def _mean(document: dict, method: str) -> float:
    return round(float(document["methods"][method]["ratio"]["mean"]), 4)


def _plan(graph, testbed: Testbed, traffic: str) -> tuple[ReplayPlan, int]:
    """Six matrices of the user's series at 10:00, scaled as ``ryute emulate`` scales."""
    from sim.paths import PathSet

    series = load_series(traffic, graph).slice(120, 126)
    path_set = PathSet.from_graph(graph, k=8, method="te")
    scale = choose_traffic_scale(np.atleast_1d(
        mlu(path_set, fallback_policy(path_set).decision(), series.tm)))
    plan = ReplayPlan.for_graph(graph, series.tm, interval_s=4.0, traffic_scale=scale,
                                capacity_scale=CAPACITY_SCALE,
                                switch_prefix=testbed.switch_prefix,
                                host_prefix=testbed.host_prefix, warmup_s=2.0, flows=32,
                                payload=9000 - 28)
    return plan, path_set.n_paths

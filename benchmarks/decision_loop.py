"""Decision loop latency with the agent in the loop, on real Open vSwitch in Mininet: shadow and
active mode, Abilene and GEANT.

    .venv/bin/python -m benchmarks.decision_loop [--topologies abilene,geant] [--decisions 20]
        [--poll 2.0] [--out benchmarks/results/decision_loop.json]

Needs root and Open vSwitch. Per topology: a testbed (bridges b1.., hosts q1.., beside anyone
else's s*/h* networks) whose controller runs a model: the shipped one (``--model default``)
when ``agents/models/<topology>.zip`` exists, else a small one trained here on the offered
traffic (the result says which). Steady UDP flows between a few host pairs give the loop a
matrix to decide on. Then ``--decisions`` decisions in shadow mode and as many in active mode.

This measures latency, not routing quality: the controller gets a configuration file with
``mlu_margin`` and ``drift_factor`` raised out of the way (a shipped model meets synthetic flows
here, not the traffic it was trained on, and may be judged worse than the fallback or drifted),
so that active mode really installs the agent's decisions. The time budget stays the default
(50 ms); decisions over it are counted.

Per phase:

- ``loop_ms``: the controller's ``ryute_decision_latency_seconds`` histogram (``/metrics``),
  statistics taken in -> fallback and agent decided and judged -> group modifications sent:
  count, mean, and the histogram buckets holding the median and the 95th percentile;
- ``agent_ms`` / ``fallback_ms``: each decision's own time, from the decision records;
- from ``ovs-ofctl --timestamp snoop`` on every switch (millisecond clock of the switch's copy of
  each OpenFlow message): ``statistics_age_ms``, from the last flow statistics reply a decision
  used to the decision (the loop decides at the next poll round: about one interval);
  ``group_mods_per_decision`` (the controller sends differences only: with steady traffic the
  installed decision may not change at all), and where a decision did modify groups,
  ``decision_to_last_group_mod_ms`` and ``statistics_to_last_group_mod_ms`` (statistics in ->
  groups modified, end to end).

``switches``: decisions that do change every group, timed the same way: ``--switches`` mode
changes each way (``PUT /te/v1/mode`` decides at once: shadow -> active installs the agent's
decision, active -> shadow the fallback's), from the request and from the decision's time stamp
to the first and the last OFPT_GROUP_MOD on any switch (the first burst of them after the
request: no gap over ``BURST_GAP_S``; a periodic decision may follow within the same interval).
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import emit
from benchmarks.controller import Snoop
from lab.config import CAPACITY_SCALE
from lab.testbed import Testbed
from topologies.catalog import load_topology

TOKEN = "decision-loop-benchmark"
UDP_PAYLOAD = 1000
FRAME = (UDP_PAYLOAD + 42) / UDP_PAYLOAD
MAX_OFFERED_MBPS = 4.0
"""Total UDP rate offered (as the switches carry it): the userspace datapath of a 2-core
machine shared with other work. The shipped GEANT model was trained on ~47 Gbit/s, i.e. 47
Mbit/s in emulation, hence the raised drift factor."""
BURST_GAP_S = 0.2
_DEFAULT_DIR = Path(__file__).resolve().parents[1] / "agents" / "models"


def _summary(values: list[float], digits: int = 2) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), digits),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], digits),
            "max": round(ordered[-1], digits), "n": len(ordered)}


# -- traffic and model -----------------------------------------------------------------------
def plan_flows(graph, scale: float, total_mbps: float, count: int = 4) -> dict[tuple, float]:
    """``count`` OD pairs with long min-hop paths over links of at least 1 Gbit/s (GEANT's
    155 Mbit/s links become 0.155 Mbit/s in emulation), distinct sources; Mbit/s each, at most
    a fifth of the path's emulated bottleneck."""
    import networkx as nx

    fast = nx.DiGraph([(u, v) for u, v, c in graph.edges(data="capacity_mbps") if c >= 1000])
    ranked = []
    for src, lengths in nx.all_pairs_shortest_path_length(fast):
        for dst, hops in lengths.items():
            if src != dst:
                ranked.append((-hops, str(src), str(dst)))
    flows, used = {}, set()
    for _, src, dst in sorted(ranked):
        if src in used or dst in used:
            continue
        path = nx.shortest_path(fast, src, dst)
        bottleneck = min(graph.edges[u, v]["capacity_mbps"] for u, v in pairwise(path))
        flows[src, dst] = round(min(total_mbps / count, bottleneck / scale / 5), 3)
        used |= {src, dst}
        if len(flows) == count:
            break
    return flows


def small_model(topology: str, flows: dict[tuple, float], scale: float, out: Path) -> Path:
    """A small agent trained in seconds on the offered flows (noise and scale varied)."""
    from agents.model_file import save_model
    from agents.train import TrainConfig, Trainer
    from topologies.traffic import TrafficSeries

    graph = load_topology(topology)
    nodes = [str(n) for n in graph.nodes]
    index = {n: i for i, n in enumerate(nodes)}
    base = np.zeros((len(nodes), len(nodes)))
    for (src, dst), mbps in flows.items():
        base[index[src], index[dst]] = mbps * FRAME * scale
    rng = np.random.default_rng(0)
    tm = base[None] * rng.lognormal(0, 0.25, (120, *base.shape)) * rng.uniform(0.6, 1.4,
                                                                               (120, 1, 1))
    config = TrainConfig(history=1, hidden=(64,), epochs=10, batch_size=16, lr=3e-3,
                         augment=0.0, validation="24", test="0", timesteps=0)
    trainer = Trainer(graph, TrafficSeries(tm, nodes, interval_s=2, source="offered flows"),
                      config, cache_dir=out.parent / "optima")
    return save_model(out, trainer.fit(), trainer.metadata(topology))


def model_scale(spec: str, topology: str) -> float:
    """The training mean total demand of a model file (topology units)."""
    import zipfile

    from agents.model_file import resolve_model

    with zipfile.ZipFile(resolve_model(spec, topology)) as z:
        return float(json.loads(z.read("metadata.json"))["encoding"]["scale_reference"])


# -- reading the controller and the switches ---------------------------------------------------
def _put_mode(testbed: Testbed, mode: str) -> None:
    assert testbed.api.set_mode(mode)["mode"] == mode


def _histogram(testbed: Testbed, name: str) -> dict[str, float]:
    """Cumulative bucket counts (``le`` -> count), ``sum`` and ``count`` of one histogram."""
    text = testbed.api.metrics()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            values[le] = float(line.split()[-1])
        elif line.startswith((name + "_sum ", name + "_count ")):
            values[line.split()[0][len(name) + 1:]] = float(line.split()[-1])
    return values


def _histogram_delta(before: dict, after: dict) -> dict[str, Any]:
    count = after["count"] - before["count"]
    if count <= 0:
        return {"count": 0}
    bounds = sorted((b for b in after if b not in ("sum", "count")),
                    key=lambda b: float("inf") if b == "+Inf" else float(b))

    def bucket(q: float) -> str:
        for bound in bounds:
            if after[bound] - before.get(bound, 0.0) >= q * count:
                return "+Inf" if bound == "+Inf" else f"<= {float(bound) * 1000:g}"
        return "+Inf"

    return {"count": int(count), "mean": round((after["sum"] - before["sum"]) / count * 1000, 2),
            "median_bucket": bucket(0.5), "p95_bucket": bucket(0.95)}


def _snoop_messages(snoop: Snoop) -> list[tuple[float, str, str, str | None]]:
    """``[(time, switch, message type, request|reply|None)]`` of every switch, in time order."""
    return sorted((at, switch, kind, direction)
                  for switch, rows in snoop.stop().items()
                  for at, kind, direction, _ in rows)


def _per_decision(records: list[dict], messages: list[tuple]) -> dict[str, Any]:
    """Group modifications of each decision (until the next one), and the flow statistics
    reply it decided on (the last one before it)."""
    stats = [at for at, _, kind, way in messages if kind == "OFPST_FLOW" and way == "reply"]
    mods = [at for at, _, kind, _ in messages if kind == "OFPT_GROUP_MOD"]
    to_last, end_to_end, counts, ages = [], [], [], []
    for record, after in zip(records, records[1:] + [None]):
        start, until = record["time"], after["time"] if after else float("inf")
        mine = [at for at in mods if start <= at < until]
        counts.append(len(mine))
        used = [at for at in stats if at < start]
        if used:
            ages.append((start - used[-1]) * 1000)
        if mine:
            to_last.append((max(mine) - start) * 1000)
            if used:
                end_to_end.append((max(mine) - used[-1]) * 1000)
    return {"statistics_age_ms": _summary(ages, 1),
            "group_mods_per_decision": _summary(counts, 0),
            "decision_to_last_group_mod_ms": _summary(to_last, 1),
            "statistics_to_last_group_mod_ms": _summary(end_to_end, 1)}


def _switches(testbed: Testbed, repeats: int, poll_s: float) -> dict[str, Any]:
    """``repeats`` mode changes each way, each a decision that changes every group."""
    _put_mode(testbed, "shadow")  # from shadow: the first change is a change
    time.sleep(poll_s * 1.3)
    before = _histogram(testbed, "ryute_decision_latency_seconds")
    snoop = Snoop(sorted(testbed.bridges))
    asked = []
    try:
        for _ in range(repeats):
            for mode in ("active", "shadow"):
                asked.append((time.time(), mode))
                _put_mode(testbed, mode)
                time.sleep(poll_s * 1.3)
    finally:
        messages = _snoop_messages(snoop)
    after = _histogram(testbed, "ryute_decision_latency_seconds")
    records = sorted(testbed.api.iter_decisions(), key=lambda r: r["seq"])
    mods = [(at, switch) for at, switch, kind, _ in messages if kind == "OFPT_GROUP_MOD"]
    result: dict[str, Any] = {"loop_ms": _histogram_delta(before, after)}
    for mode, installs in (("active", "agent"), ("shadow", "fallback")):
        first_ms, last_ms, request_ms, counts, switches, sources = [], [], [], [], [], []
        to_decision_ms = []
        for at, wanted in asked:
            if wanted != mode:
                continue
            decided = next((r for r in records if r["time"] >= at), None)
            if decided is None:
                continue
            sources.append(decided["source"])
            to_decision_ms.append((decided["time"] - at) * 1000)
            mine = []
            for t, switch in mods:
                if t >= at and (not mine or t - mine[-1][0] <= BURST_GAP_S):
                    mine.append((t, switch))
                elif mine:
                    break
            counts.append(len(mine))
            if mine:
                switches.append(len({switch for _, switch in mine}))
                first_ms.append((min(t for t, _ in mine) - decided["time"]) * 1000)
                last_ms.append((max(t for t, _ in mine) - decided["time"]) * 1000)
                request_ms.append((max(t for t, _ in mine) - at) * 1000)
        result[f"to_{mode}"] = {
            "installed": {s: sources.count(s) for s in sorted(set(sources))},
            "request_to_decision_ms": _summary(to_decision_ms, 1),
            "group_mods": _summary(counts, 0),
            "switches_modified": _summary(switches, 0),
            "decision_to_first_group_mod_ms": _summary(first_ms, 1),
            "decision_to_last_group_mod_ms": _summary(last_ms, 1),
            "request_to_last_group_mod_ms": _summary(request_ms, 1)}
    return result


# -- one topology --------------------------------------------------------------------------------
def _phase(testbed: Testbed, mode: str, decisions: int, poll_s: float) -> dict[str, Any]:
    _put_mode(testbed, mode)
    time.sleep(poll_s + 0.5)  # the mode's first interval
    before = _histogram(testbed, "ryute_decision_latency_seconds")
    snoop = Snoop(sorted(testbed.bridges))
    started = time.time()
    try:
        deadline = time.monotonic() + decisions * poll_s * 3 + 30
        while time.monotonic() < deadline:
            records = [r for r in testbed.api.decisions(decisions + 20) if r["time"] > started]
            if len(records) >= decisions:
                break
            time.sleep(poll_s / 2)
        time.sleep(poll_s / 2)  # the last decision's group modifications are in
    finally:
        messages = _snoop_messages(snoop)
    after = _histogram(testbed, "ryute_decision_latency_seconds")
    records = sorted(records, key=lambda r: r["seq"])[:decisions]
    reasons: dict[str, int] = {}
    for record in records:
        for reason in record["reasons"]:
            key = reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "decisions": len(records),
        "sources": {s: sum(r["source"] == s for r in records) for s in ("agent", "fallback")},
        "untrusted_reasons": reasons,
        "loop_ms": _histogram_delta(before, after),
        "agent_ms": _summary([r["decision_ms"]["agent"] for r in records
                              if r["decision_ms"]["agent"] is not None]),
        "fallback_ms": _summary([r["decision_ms"]["fallback"] for r in records]),
        **_per_decision(records, messages),
    }


def run(topology: str, decisions: int, switches: int, poll_s: float, scale: float,
        work: Path) -> dict:
    graph = load_topology(topology)
    shipped = (_DEFAULT_DIR / f"{topology}.zip").is_file()
    reference = model_scale("default", topology) if shipped else None
    total = min(MAX_OFFERED_MBPS, reference / scale / FRAME) if reference else MAX_OFFERED_MBPS
    flows = plan_flows(graph, scale, total)
    if shipped:
        model, about = "default", f"shipped agents/models/{topology}.zip"
    else:
        model = str(small_model(topology, flows, scale, work / f"{topology}.zip"))
        about = "small model trained here on the offered flows (no shipped model)"
    config = work / f"{topology}.toml"
    config.write_text("mlu_margin = 1000.0\ndrift_factor = 1000.0\n")
    result: dict[str, Any] = {"topology": topology, "model": about, "poll_s": poll_s,
                              "offered_mbps": {f"{s}->{d}": r for (s, d), r in flows.items()}}
    started = time.monotonic()
    with Testbed(topology, scale=scale, switch_prefix="b", host_prefix="q",
                 poll_interval_s=poll_s, connect_timeout_s=120,
                 controller_args=("--config", str(config), "--model", model, "--mode", "shadow"),
                 api_token=TOKEN) as testbed:
        dpid = {str(n): d["dpid"] for n, d in graph.nodes(data=True)}
        host = {spec.dpid: spec.name for spec in reversed(testbed.topo.host_specs)}
        bridges, links = len(testbed.bridges), graph.number_of_edges()
        testbed.wait_for(lambda: (s := testbed.api.status())["switches"] == bridges
                         and s["links"] == links, timeout_s=180)
        for port, ((src, dst), mbps) in enumerate(flows.items(), start=5401):
            a, b = testbed.net.get(host[dpid[src]]), testbed.net.get(host[dpid[dst]])
            testbed.wait_for(lambda a=a, b=b: testbed.net.ping([a, b], timeout=2) == 0,
                             timeout_s=60, interval_s=1)
            testbed.iperf3(a.name, b.name, seconds=3600, udp_mbps=mbps, length=UDP_PAYLOAD,
                           port=port)
        try:
            status = testbed.wait_for(
                lambda: (s := testbed.api.status())["health"]["trusted"] and s,
                timeout_s=120, interval_s=1)
        except TimeoutError:
            latest = testbed.api.decisions(5)
            result["error"] = ("the agent was not trusted within 120 s; latest decisions: "
                               + json.dumps([{k: d[k] for k in ("source", "reasons",
                                                                 "decision_ms")}
                                             for d in latest]))
            return result
        result["model_id"] = status["model"]
        result["ready_s"] = round(time.monotonic() - started, 1)
        for mode in ("shadow", "active"):
            result[mode] = _phase(testbed, mode, decisions, poll_s)
        result["switches"] = _switches(testbed, switches, poll_s)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default="abilene,geant")
    parser.add_argument("--decisions", type=int, default=20, help="per mode (default 20)")
    parser.add_argument("--switches", type=int, default=5,
                        help="mode changes each way (default 5)")
    parser.add_argument("--poll", type=float, default=2.0, help="poll interval s (default 2)")
    parser.add_argument("--scale", type=float, default=CAPACITY_SCALE)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ryute-loop-") as work:
        results = [run(t, args.decisions, args.switches, args.poll, args.scale, Path(work))
                   for t in args.topologies.split(",")]
    emit({"benchmark": "decision_loop", "results": results}, args.out)


if __name__ == "__main__":
    main()

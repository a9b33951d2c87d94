"""``ryute emulate``: replay a traffic series through the controller and Open vSwitch in Mininet.

One run: start the testbed (controller with the model in shadow mode, a decision log, an API
token in its environment, a poll interval giving several statistics readings per replay interval), wait for
discovery and the hosts, then replay the same matrix sequence once per phase (``shadow``,
``active``, ...), switching the controller's mode through ``PUT /te/v1/mode`` between phases.

Per phase and interval it reports the measured MLU (port counters, as the controller sees
them in ``/te/v1/topology``: the busiest link of the utilization averaged over the interval's
steady readings, :func:`lab.emulation.interval_mlu`), the fallback's and
the agent's predicted MLU (``/te/v1/decisions``), packet loss and delivered throughput (the
replay agents' own counts) and the offered-load error (what the senders sent against the
plan). Fidelity: for every steady reading, the TE core's link loads (``sim.loads.link_loads``)
of the installed weights (``/te/v1/paths``) on the offered matrix against the measured loads.

Readings: the controller closes a statistics interval at every poll; a reading covers the
time since the previous one. A reading is *steady* in replay interval j when it lies inside
the interval and is not the first one that does (the decision installed at that first one's
start was made on statistics mixing two matrices).

Everything started here ends with the ``Testbed`` context (controller, Mininet hosts and
their replay agents, bridges), also on Ctrl-C, SIGTERM and errors.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import fallback_policy
from api import endpoints
from controller.auth import new_api_token
from lab.config import CAPACITY_SCALE, SYNTHETIC_START, default_start, poll_interval_for
from lab.emulation import (
    Reading,
    inside_readings,
    interval_mlu,
    replay,
    wait_until_ready,
)
from lab.replay import (
    DEFAULT_FLOWS,
    MLU_RANGE,
    ReplayPlan,
    choose_traffic_scale,
    collect_reports,
    interval_summary,
)
from sim import runs
from sim.decision import Decision
from sim.loads import mlu
from sim.paths import PathSet

LOG = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[1]
LOADED_UTILIZATION = 0.05
"""Links below this predicted utilization are left out of the per-link relative error."""


@dataclass
class EmulationConfig:
    topology: str = "abilene"
    traffic: str = "synthetic"
    capacity_scale: float = CAPACITY_SCALE
    interval_s: float = 10.0
    duration_s: float = 120.0
    """Replayed time per phase (warm-up not included): duration / interval matrices."""
    start: int | None = None
    """First replayed matrix of the series (default: :func:`lab.config.default_start`, synthetic
    120 = 10:00, a file: the start of its last 20 %)."""
    seed: int = 0
    traffic_scale: float | None = None
    model: str | None = "default"
    phases: tuple[str, ...] = ("shadow", "active")
    poll_interval_s: float | None = None
    """Default: :func:`lab.config.poll_interval_for` the interval."""
    warmup_s: float | None = None
    flows: int = DEFAULT_FLOWS
    payload: int | None = None
    """UDP payload bytes (default: the largest the MTU allows, mtu - 28)."""
    mtu: int = 1500
    """The hosts' MTU; above 1500, host links and switch ports are raised for jumbo frames
    (fewer packets for the same load: the userspace switches' cost is per packet)."""
    switch_prefix: str = "e"
    host_prefix: str = "x"
    json_out: Path | None = None
    plot_out: Path | None = None
    run_dir: Path | None = None
    keep_s: float = 0.0
    """After the last phase, keep the network and the controller up this long (Ctrl-C ends it
    sooner), so the dashboard and the REST API can be looked at."""

    @property
    def poll_s(self) -> float:
        if self.poll_interval_s:
            return self.poll_interval_s
        return poll_interval_for(self.interval_s)

    @property
    def payload_bytes(self) -> int:
        return self.payload or self.mtu - 28

    @property
    def n_intervals(self) -> int:
        return max(1, int(self.duration_s // self.interval_s))


# -- traffic -------------------------------------------------------------------------------

def replay_series(config: EmulationConfig, graph):
    """The replayed matrices (TrafficSeries in graph order) and the index of the first."""
    from topologies.traffic import TrafficError, is_synthetic, load_series

    n = config.n_intervals
    if is_synthetic(config.traffic):
        start = SYNTHETIC_START if config.start is None else config.start
        series = load_series(config.traffic, graph, steps=start + n, seed=config.seed)
    else:
        series = load_series(config.traffic, graph)
        valid = np.flatnonzero(series.valid_mask)
        series = series._with(tm=series.tm[valid],
                              times=tuple(series.times[i] for i in valid) if series.times else ())
        start = default_start(config.traffic, len(series)) if config.start is None \
            else config.start
    if start < 0 or start + n > len(series):
        raise TrafficError(f"{config.traffic}: cannot replay {n} matrices from index {start} "
                           f"of a series of {len(series)}")
    return series.slice(start, start + n), start


def fallback_decision(path_set: PathSet) -> Decision:
    """What the controller's fallback installs with every link up (invcap, ECMP ties)."""
    return fallback_policy(path_set).decision()


def fallback_mlu(graph, tm) -> np.ndarray:
    """The fallback's predicted MLU of every matrix of ``tm`` [T, N, N] (or one [N, N])."""
    path_set = PathSet.from_graph(graph, k=4)
    return np.atleast_1d(mlu(path_set, fallback_decision(path_set),
                             np.asarray(tm, dtype=np.float64)))


def resolve_model(spec: str | None, topology: str) -> tuple[Path | None, str]:
    """The model file to give the controller, or None and why not."""
    if not spec:
        return None, "no model asked for (--model none)"
    from agents.model_file import ModelFileError  # torch only when a model is asked for
    from agents.model_file import resolve_model as resolve

    try:
        path = resolve(spec, topology)
    except ModelFileError as error:
        return None, str(error)
    if not path.is_file():
        return None, f"model file {path} not found"
    return path.resolve(), ""


# -- one phase -----------------------------------------------------------------------------

@dataclass
class PhaseRun:
    name: str
    started_at: float  # first segment (warm-up)
    measured_at: float  # first replayed matrix
    readings: list[Reading]
    decisions: list[dict]
    reports: list[dict]
    monitor_errors: int


def run_phase(testbed, plan: ReplayPlan, phase: str, folder: Path,
              poll_s: float, n_paths: int, say) -> PhaseRun:
    mode = testbed.api.set_mode(phase)
    say(f"phase {phase}: mode {mode['mode']}, installed source {mode['source']}")
    time.sleep(poll_s)  # one decision in the new mode before traffic starts
    run = replay(testbed, plan, folder, poll_s, n_paths)
    decisions = [d for d in itertools.takewhile(
        lambda d: d["time"] >= run.started_at - poll_s, testbed.api.iter_decisions())
        if d["time"] <= run.ended_at]
    return PhaseRun(phase, run.started_at, run.measured_at, run.readings,
                    sorted(decisions, key=lambda d: d["time"]), run.reports, run.monitor_errors)


# -- analysis ------------------------------------------------------------------------------

SETTLE_READINGS = 2
"""Readings inside an interval that are not steady. The controller closes a statistics window
at one poll round and decides on it at the next, so the decision in force during window k was
made on window k - 2: the first two windows inside an interval still run on decisions made
from statistics of the previous matrix."""


def analyse_phase(run: PhaseRun, plan: ReplayPlan, path_set, edges_index) -> dict[str, Any]:
    from sim.loads import link_loads

    counts = collect_reports(plan, run.reports)
    offered_net = plan.rates_mbps  # [T, N, N] Mbit/s on an inter-switch wire
    capacities = path_set.capacities / plan.capacity_scale
    by_at = {r.at: i for i, r in enumerate(run.readings)}
    intervals = []
    all_link_errors, all_mlu_errors = [], []
    for j in range(plan.n_intervals):
        begin = run.measured_at + j * plan.interval_s
        end = begin + plan.interval_s
        inside = inside_readings(run.readings, begin, end)
        steady = inside[SETTLE_READINGS:]
        measured = interval_mlu(steady, edges_index)  # the MLU of the mean utilization
        # the decisions made on the statistics of this interval's matrix: the first after each
        # inside reading
        decided = []
        for reading in inside:
            made = next((d for d in run.decisions if d["time"] > reading.at), None)
            if made is not None and made not in decided:
                decided.append(made)
        predicted = {name: _mean([d["predicted_mlu"].get(name) for d in decided])
                     for name in ("fallback", "agent")}
        sources = [d["source"] for d in decided]
        # fidelity: the TE core on the offered matrix with the installed weights
        fidelity = []
        for reading in steady:
            index = by_at[reading.at]
            weights = None
            if index >= 2 and run.readings[index - 1].start == run.readings[index - 2].at:
                weights = run.readings[index - 2].weights_after
            if weights is None or np.isnan(weights).any():
                continue
            loads = link_loads(path_set, weights, offered_net[j])
            have = np.array([reading.load_mbps.get(edge, np.nan) for edge in edges_index])
            want_util = loads / capacities
            loaded = want_util >= LOADED_UTILIZATION
            rel = np.abs(have[loaded] - loads[loaded]) / loads[loaded]
            predicted_mlu = float(want_util.max())
            measured_mlu = float(np.nanmax(have / capacities))
            fidelity.append({"predicted_util": want_util, "measured_util": have / capacities,
                             "link_error_median": float(np.nanmedian(rel)) if rel.size else None,
                             "link_error_max": float(np.nanmax(rel)) if rel.size else None,
                             "predicted_mlu": predicted_mlu, "measured_mlu": measured_mlu,
                             "mlu_error": abs(measured_mlu - predicted_mlu) / predicted_mlu})
            all_link_errors.extend(rel[np.isfinite(rel)].tolist())
            all_mlu_errors.append(abs(measured_mlu - predicted_mlu) / predicted_mlu)
        # switch-side offered load: the controller's measured OD matrix (ingress counters,
        # frames without the label) against the plan
        ods = [np.array(r.od_mbps) for r in steady if r.od_mbps]
        switch_error = None
        if ods:
            od = np.mean(ods, axis=0) * plan.wire_bytes / (plan.wire_bytes - 4)
            planned = offered_net[j].sum()
            switch_error = float((od.sum() - planned) / planned) if planned else None
        traffic = interval_summary(plan, counts, j)
        links = {}
        if fidelity:
            predicted_util = np.mean([f.pop("predicted_util") for f in fidelity], axis=0)
            measured_util = np.nanmean([f.pop("measured_util") for f in fidelity], axis=0)
            links = {f"{u}->{v}": [round(float(a), 4), round(float(b), 4)]
                     for (u, v), a, b in zip(edges_index, predicted_util, measured_util)}
        intervals.append({
            "interval": j, "begin": begin, "readings": len(steady),
            "measured_mlu": measured[0] if measured is not None else None,
            "predicted_mlu": predicted,
            "sim_predicted_mlu": _mean([f["predicted_mlu"] for f in fidelity]),
            "sources": {s: sources.count(s) for s in sorted(set(sources))},
            **traffic,
            "offered_error_switches": switch_error,
            "fidelity": {
                "link_error_median": _mean([f["link_error_median"] for f in fidelity]),
                "mlu_error": _mean([f["mlu_error"] for f in fidelity]),
                "links_predicted_measured": links,
            },
        })
    decisions = run.decisions
    summary = {
        "measured_mlu": _mean([i["measured_mlu"] for i in intervals]),
        "predicted_mlu": {name: _mean([i["predicted_mlu"][name] for i in intervals])
                          for name in ("fallback", "agent")},
        "loss": _ratio(float((counts.sent_packets[1:] - counts.received_packets[1:]).sum()),
                       float(counts.sent_packets[1:].sum())),
        "delivered_mbps": _mean([i["delivered_mbps"] for i in intervals]),
        "planned_mbps": _mean([i["planned_mbps"] for i in intervals]),
        "offered_error_abs_mean": _mean([abs(i["offered_error"]) for i in intervals
                                         if i["offered_error"] is not None]),
        "offered_error_abs_max": max((abs(i["offered_error"]) for i in intervals
                                      if i["offered_error"] is not None), default=None),
        "offered_error_od_median": _mean([i["offered_error_od_median"] for i in intervals]),
        "offered_error_switches_abs_mean": _mean([abs(i["offered_error_switches"])
                                                  for i in intervals
                                                  if i["offered_error_switches"] is not None]),
        "fidelity": {
            "link_error_median": float(np.median(all_link_errors)) if all_link_errors else None,
            "link_error_p90": (float(np.percentile(all_link_errors, 90))
                               if all_link_errors else None),
            "mlu_error_median": float(np.median(all_mlu_errors)) if all_mlu_errors else None,
            "mlu_error_max": float(np.max(all_mlu_errors)) if all_mlu_errors else None,
            "readings": len(all_mlu_errors),
        },
        **decision_counts(decisions),
        "send_errors": counts.send_errors,
        "late_start_s": counts.late_start_s,
        "max_sender_lag_s": counts.max_lag_s,
        "skipped_mbps": _mbps(counts.skipped_bytes[1:].sum(),
                              plan.interval_s * plan.n_intervals),
        "monitor_errors": run.monitor_errors,
        "missing_reports": counts.missing_reports,
    }
    timeline = [{"t": r.at - run.measured_at, "mlu": max(r.utilization.values())}
                for r in run.readings if r.utilization]
    return {"summary": summary, "intervals": intervals, "timeline": timeline}


AGENT_SOURCES = ("agent", "agent-held")
"""Sources of a decision record that install the agent's decision: its fresh one, or the one
it made earlier, held over a transient fault (late, busy, raised)."""
SOURCE_LETTERS = {"agent": "a", "agent-held": "h", "blend": "b", "fallback": "f", "external": "e"}


def decision_counts(decisions: list[dict]) -> dict[str, Any]:
    """How many decisions installed the agent's decision (fresh or held), how many held one,
    how many a rollout's blend of it with the fallback's, and the first distinct reasons."""
    return {
        "decisions": len(decisions),
        "agent_installed": sum(d["source"] in AGENT_SOURCES for d in decisions),
        "agent_held": sum(d["source"] == "agent-held" for d in decisions),
        "agent_blend": sum(d["source"] == "blend" for d in decisions),
        "agent_untrusted_reasons": sorted({reason for d in decisions
                                           for reason in d["reasons"]})[:5],
    }


def sources_text(counts: dict[str, int]) -> str:
    """``{"agent": 2, "agent-held": 1}`` as ``a2,h1``: one letter per source."""
    return ",".join(f"{SOURCE_LETTERS.get(k, k)}{v}" for k, v in counts.items())


def _mean(values) -> float | None:
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _mbps(nbytes: float, seconds: float) -> float:
    return float(nbytes) * 8 / seconds / 1e6


# -- the whole run -------------------------------------------------------------------------

def run_emulation(config: EmulationConfig, say=print) -> dict[str, Any]:
    from lab.testbed import Testbed
    from topologies.catalog import load_topology

    started = time.time()
    load_before = os.getloadavg()
    graph = load_topology(config.topology)
    series, first = replay_series(config, graph)
    path_set = PathSet.from_graph(graph, k=4)
    fallback = fallback_decision(path_set)
    scale = config.traffic_scale or choose_traffic_scale(
        np.atleast_1d(mlu(path_set, fallback, series.tm)))
    planned_mlu = np.atleast_1d(mlu(path_set, fallback, series.tm * scale))
    poll = config.poll_s
    warmup = config.warmup_s if config.warmup_s is not None else 6 * poll
    plan = ReplayPlan.for_graph(graph, series.tm, interval_s=config.interval_s,
                                traffic_scale=scale, capacity_scale=config.capacity_scale,
                                switch_prefix=config.switch_prefix,
                                host_prefix=config.host_prefix, warmup_s=warmup,
                                flows=config.flows, payload=config.payload_bytes)
    say(f"Replaying {plan.n_intervals} matrices of {series.source} (from index {first}) every "
        f"{config.interval_s:g} s on {config.topology}, capacities / {config.capacity_scale:g}")
    inside = float(np.mean((planned_mlu >= MLU_RANGE[0]) & (planned_mlu <= MLU_RANGE[1])))
    say(f"traffic scale {scale:.4g}: the fallback's predicted MLU is "
        f"{planned_mlu.min():.3f}..{planned_mlu.max():.3f} ({inside:.0%} of the matrices in "
        f"[{MLU_RANGE[0]}, {MLU_RANGE[1]}]); {plan.rates_mbps.sum(axis=(1, 2)).mean():.2f} "
        f"Mbit/s offered on average in the emulation")
    model_path, why_not = resolve_model(config.model, config.topology)
    if model_path is None:
        say(f"No agent: {why_not}. Every phase runs the fallback only (invcap, ECMP ties).")
    run_dir = Path(config.run_dir or runs.run_dir("emulate"))
    run_dir.mkdir(parents=True, exist_ok=True)
    controller_args = ["--mode", "shadow", "--decision-log", str(run_dir / "decisions.jsonl")]
    if model_path is not None:
        controller_args += ["--model", str(model_path)]
    # the controller's candidate paths are the ones predicted with here, whatever the model's
    controller_args += ["--paths-k", str(path_set.k), "--path-method", path_set.method]
    phases = {}
    previous_handler = signal.getsignal(signal.SIGTERM)

    def terminate(signum, frame):  # SIGTERM: leave through the context managers, as on Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        with Testbed(config.topology, scale=config.capacity_scale, poll_interval_s=poll,
                     controller_args=tuple(controller_args), api_token=new_api_token(),
                     log_dir=run_dir, switch_prefix=config.switch_prefix,
                     host_prefix=config.host_prefix) as testbed:
            expected = graph.number_of_edges()
            loss = wait_until_ready(testbed, plan, config.mtu)
            hosts = sum(h is not None for h in plan.hosts)
            status = testbed.api.status()
            model_id = status["model"]
            if model_path is not None and model_id is None:
                say(f"The controller did not load {model_path} (see {testbed.controller_log}): "
                    "every phase runs the fallback only.")
            say(f"{len(testbed.net.switches)} switches, {expected} links, {hosts} hosts up "
                f"(first pingAll lost {loss:.0f} %) in {time.time() - started:.0f} s; "
                f"REST {testbed.rest_url}{endpoints.STATUS.path}, dashboard {testbed.rest_url}/")
            for phase in config.phases:
                run = run_phase(testbed, plan, phase, run_dir / phase, poll,
                                path_set.n_paths, say)
                phases[phase] = analyse_phase(run, plan, path_set, path_set.edges)
                phases[phase]["summary"]["fallback_only"] = model_id is None
                _print_phase(phase, phases[phase], say)
            keep_up(testbed, config.keep_s, say)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    result = {
        "topology": config.topology, "traffic": series.source, "first_matrix": first,
        "times": list(series.times), "intervals": plan.n_intervals,
        "interval_s": config.interval_s, "warmup_s": warmup, "poll_interval_s": poll,
        "capacity_scale": config.capacity_scale, "traffic_scale": scale,
        "fallback_predicted_mlu_plan": planned_mlu.tolist(),
        "flows_per_od": config.flows, "payload_bytes": config.payload_bytes, "mtu": config.mtu,
        "model": str(model_path) if model_path else None, "model_id": model_id,
        "fallback_only": model_id is None,
        "phases": phases, "comparison": _compare(phases),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "elapsed_s": round(time.time() - started, 1), "run_dir": str(run_dir),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
    }
    if config.json_out:
        Path(config.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(config.json_out).write_text(json.dumps(result, indent=1))
        say(f"JSON: {config.json_out}")
    if config.plot_out:
        plot(result, config.plot_out)
        say(f"Plot: {config.plot_out}")
    comparison = result["comparison"]
    if comparison:
        say(f"Mean measured MLU: {comparison['text']}")
    return result


def keep_up(testbed, seconds: float, say) -> None:
    """Leave the network and the controller running ``seconds`` (Ctrl-C: at once)."""
    if seconds <= 0:
        return
    say(f"\nKeeping the network and the controller up for {seconds:g} s (Ctrl-C ends it): "
        f"dashboard {testbed.rest_url}/, `ryute status --url {testbed.rest_url}`")
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        say("stopping")


def _compare(phases: dict[str, dict]) -> dict[str, Any] | None:
    if "shadow" not in phases or "active" not in phases:
        return None
    shadow, active = phases["shadow"]["summary"], phases["active"]["summary"]
    if shadow["measured_mlu"] is None or active["measured_mlu"] is None:
        return None
    ratio = active["measured_mlu"] / shadow["measured_mlu"]
    return {"active_over_shadow_mlu": ratio,
            "loss": {"shadow": shadow["loss"], "active": active["loss"]},
            "text": f"shadow (fallback) {shadow['measured_mlu']:.3f}, active "
                    f"{active['measured_mlu']:.3f} (x{ratio:.3f})"}


def _fmt(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print_phase(name: str, phase: dict, say) -> None:
    summary = phase["summary"]
    say(f"\n{name}{' (fallback only)' if summary['fallback_only'] else ''}:")
    say(f"{'int':>3} {'MLU meas':>8} {'pred fb':>7} {'pred ag':>7} {'sim':>6} {'loss':>7} "
        f"{'deliv':>7} {'offer err':>9} {'link err':>8} {'sources':>12}")
    for i in phase["intervals"]:
        sources = sources_text(i["sources"])
        say(f"{i['interval']:>3} {_fmt(i['measured_mlu']):>8} "
            f"{_fmt(i['predicted_mlu']['fallback']):>7} {_fmt(i['predicted_mlu']['agent']):>7} "
            f"{_fmt(i['sim_predicted_mlu']):>6} {_fmt(i['loss'], '.2%'):>7} "
            f"{_fmt(i['delivered_mbps'], '.2f'):>7} {_fmt(i['offered_error'], '+.2%'):>9} "
            f"{_fmt(i['fidelity']['link_error_median'], '.1%'):>8} {sources:>12}")
    fidelity = summary["fidelity"]
    say(f"mean measured MLU {_fmt(summary['measured_mlu'])}, predicted fallback "
        f"{_fmt(summary['predicted_mlu']['fallback'])} agent "
        f"{_fmt(summary['predicted_mlu']['agent'])}; loss {_fmt(summary['loss'], '.3%')}; "
        f"offered-load error {_fmt(summary['offered_error_abs_mean'], '.2%')} (mean |total|), "
        f"{_fmt(summary['offered_error_od_median'], '.2%')} (median per OD); fidelity: median "
        f"link error {_fmt(fidelity['link_error_median'], '.1%')}, median MLU error "
        f"{_fmt(fidelity['mlu_error_median'], '.1%')}; agent installed in "
        f"{summary['agent_installed']}/{summary['decisions']} decisions"
        + (f" ({summary['agent_held']} held over a transient fault)"
           if summary.get("agent_held") else ""))


def plot(result: dict[str, Any], out: str | Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, phase in result["phases"].items():
        times = [p["t"] for p in phase["timeline"] if p["t"] >= -result["warmup_s"]]
        values = [p["mlu"] for p in phase["timeline"] if p["t"] >= -result["warmup_s"]]
        ax.plot(times, values, marker=".", label=f"{name}: measured MLU per reading")
        steady = [(i["begin"] - phase["intervals"][0]["begin"] + result["interval_s"] / 2,
                   i["measured_mlu"]) for i in phase["intervals"] if i["measured_mlu"]]
        if steady:
            ax.plot(*zip(*steady), linestyle="none", marker="s",
                    label=f"{name}: steady mean per interval")
    plan = result["fallback_predicted_mlu_plan"]
    step = result["interval_s"]
    ax.step([i * step for i in range(len(plan) + 1)], plan + plan[-1:], where="post",
            color="grey", linestyle="--", label="fallback, predicted on the plan")
    ax.axvspan(-result["warmup_s"], 0, color="0.92", label="warm-up")
    ax.set_xlabel("seconds since the first replayed matrix")
    ax.set_ylabel("MLU")
    ax.set_title(f"{result['topology']}: measured MLU per phase "
                 f"(traffic x{result['traffic_scale']:.3g}, capacities / "
                 f"{result['capacity_scale']:g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


# -- command line --------------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "emulate", help="replay a traffic series in Mininet through the controller, per mode",
        description="Start the controller and the topology in Mininet, replay the traffic "
                    "series as paced UDP flows once per phase (switching the controller's mode "
                    "between phases), and report measured and predicted MLU, loss, "
                    "throughput, offered-load error and sim-to-emulation fidelity.")
    parser.add_argument("--topology", default="abilene", help="catalog name or topology file")
    parser.add_argument("--traffic", default="synthetic",
                        help="a .tm.npz series, or 'synthetic[:steps=N,seed=S,load=L]' "
                             "(the project's generator)")
    parser.add_argument("--scale", type=float, default=CAPACITY_SCALE, dest="capacity_scale",
                        help=f"capacities are divided by this in Mininet (default "
                             f"{CAPACITY_SCALE:g})")
    parser.add_argument("--interval", type=float, default=10.0, dest="interval_s",
                        help="seconds each matrix is replayed (default 10)")
    parser.add_argument("--duration", type=float, default=120.0, dest="duration_s",
                        help="seconds replayed per phase, without the warm-up (default 120)")
    parser.add_argument("--model", default="default",
                        help="agent model file, 'default' (the shipped model of the topology) "
                             "or 'none'")
    parser.add_argument("--phases", default="shadow,active",
                        help="controller modes, one replay each (default shadow,active)")
    parser.add_argument("--traffic-scale", type=float,
                        help="multiply the series by this (default: the fallback's predicted "
                             f"MLU in [{MLU_RANGE[0]}, {MLU_RANGE[1]}])")
    parser.add_argument("--start", type=int, help="first replayed matrix of the series")
    parser.add_argument("--seed", type=int, default=0, help="seed of a synthetic series")
    parser.add_argument("--poll-interval", type=float, dest="poll_interval_s",
                        help="controller statistics interval (default interval / 4, 0.5..2 s)")
    parser.add_argument("--warmup", type=float, dest="warmup_s",
                        help="seconds of the first matrix before the measured ones "
                             "(default 6 poll intervals)")
    parser.add_argument("--flows", type=int, default=DEFAULT_FLOWS,
                        help=f"UDP flows per OD pair (own source addresses; default "
                             f"{DEFAULT_FLOWS})")
    parser.add_argument("--mtu", type=int, default=1500,
                        help="hosts' MTU (default 1500; e.g. 9000 for jumbo frames, which "
                             "the switch ports then carry too)")
    parser.add_argument("--payload", type=int, help="UDP payload bytes (default mtu - 28)")
    parser.add_argument("--switch-prefix", default="e", help="bridge names (default e1, e2...)")
    parser.add_argument("--host-prefix", default="x", help="host names (default x1, x2...)")
    parser.add_argument("--json", type=Path, dest="json_out", help="write the results here")
    parser.add_argument("--plot", type=Path, dest="plot_out",
                        help="PNG of the measured MLU over time per phase")
    parser.add_argument("--run-dir", type=Path,
                        help="schedules, reports, logs (default runs/emulate/<time>-<pid>)")
    parser.add_argument("--keep", type=float, default=0.0, dest="keep_s", metavar="SECONDS",
                        help="keep the network and the controller (its dashboard) up this long "
                             "after the last phase (default 0)")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> EmulationConfig:
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = [p for p in phases if p not in ("shadow", "active")]
    if unknown or not phases:
        raise ValueError(f"phases must be shadow and/or active, got {args.phases!r}")
    if args.interval_s <= 0 or args.duration_s < args.interval_s:
        raise ValueError("--interval must be > 0 and --duration at least one interval")
    if args.keep_s < 0:
        raise ValueError(f"--keep must be >= 0 seconds, got {args.keep_s:g}")
    return EmulationConfig(
        topology=args.topology, traffic=args.traffic, capacity_scale=args.capacity_scale,
        interval_s=args.interval_s, duration_s=args.duration_s, start=args.start,
        seed=args.seed, traffic_scale=args.traffic_scale,
        model=None if args.model in ("none", "") else args.model, phases=phases,
        poll_interval_s=args.poll_interval_s, warmup_s=args.warmup_s, flows=args.flows,
        payload=args.payload, mtu=args.mtu, switch_prefix=args.switch_prefix, host_prefix=args.host_prefix,
        json_out=args.json_out, plot_out=args.plot_out, run_dir=args.run_dir,
        keep_s=args.keep_s)


def run(args: argparse.Namespace) -> int:
    from lab.testbed import TestbedError

    config = config_from_args(args)
    try:
        run_emulation(config)
    except TestbedError as error:
        print(f"ryute emulate: error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.emulate ...``: the same as ``ryute emulate ...``."""
    parser = argparse.ArgumentParser(prog="python -m lab.emulate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["emulate", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Operator commands against a running controller's REST API, and the shadow-run report.

``ryute status``, ``ryute mode shadow|active``, ``ryute decisions``, ``ryute links``,
``ryute paths``, ``ryute traffic`` talk to ``--url``
(default ``$RYUTE_URL`` or http://127.0.0.1:8080) through the one REST client
(:class:`api.client.ControllerClient`) with ``--token`` (default ``$RYUTE_API_TOKEN``);
human-readable output by default, ``--json`` for scripts. ``ryute shadow-report FILE`` reads a
decision log (JSON lines) and says what activating the agent would have changed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api import endpoints
from api.client import DEFAULT_URL, ApiError, ControllerClient
from controller.cli_errors import CliError

COMMANDS = ("status", "mode", "decisions", "links", "paths", "traffic", "shadow-report")
"""The subcommands of this module: ``ryute`` builds only their parser for them (fast)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("RYUTE_URL", DEFAULT_URL),
                        help=f"controller REST API (default $RYUTE_URL or {DEFAULT_URL})")
    common.add_argument("--token", default=os.environ.get("RYUTE_API_TOKEN"),
                        help="bearer token (default $RYUTE_API_TOKEN)")
    common.add_argument("--ca-file", default=os.environ.get("RYUTE_CA_FILE"),
                        help="an https:// controller's certificate must be signed by this CA "
                             "(PEM; default $RYUTE_CA_FILE, else the system's CAs)")
    common.add_argument("--json", action="store_true", help="print the raw JSON answer")

    status = subparsers.add_parser("status", parents=[common], help="what the controller is doing")
    status.set_defaults(func=run_status)
    mode = subparsers.add_parser("mode", parents=[common], help="switch between shadow and active")
    mode.add_argument("mode", choices=["shadow", "active"])
    mode.add_argument("--fraction", type=float,
                      help="active, gradually: share of each OD pair's weight moved from the "
                           "fallback's split to the agent's, in (0, 1]")
    mode.add_argument("--step", type=float,
                      help="widen the fraction by this while the measured MLU stays within the "
                           "margin of the fallback's; rolled back to shadow when it does not")
    mode.add_argument("--ingress", type=lambda text: [n for n in text.split(",") if n],
                      help="canary: only the OD pairs entering at these switches (a,b,c)")
    mode.set_defaults(func=run_mode)
    decisions = subparsers.add_parser("decisions", parents=[common], help="the latest decisions")
    decisions.add_argument("--limit", type=int, default=10, help="how many (default 10)")
    decisions.set_defaults(func=run_decisions)
    links = subparsers.add_parser("links", parents=[common],
                                  help="the links: capacity, load, utilization, up or down")
    links.set_defaults(func=run_links)
    paths = subparsers.add_parser("paths", parents=[common],
                                  help="each OD pair's candidate paths and installed weights")
    paths.add_argument("--od", metavar="SRC-DST", help="only this OD pair (e.g. ATLAng-CHINng)")
    paths.set_defaults(func=run_paths)
    traffic = subparsers.add_parser("traffic", parents=[common],
                                    help="the latest measured OD matrix, largest pairs first")
    traffic.add_argument("--top", type=int, default=10, help="how many OD pairs (default 10)")
    traffic.add_argument("--units", choices=["network", "topology"], default="network",
                         help="network: as the switches carry it (default); topology: in the "
                              "topology file's units")
    traffic.set_defaults(func=run_traffic)
    report = subparsers.add_parser(
        "shadow-report", help="summarize a decision log: what activating the agent would change")
    report.add_argument("log", type=Path, help="decision log (JSON lines, --decision-log)")
    report.add_argument("--plot", type=Path, help="write a PNG of predicted and measured MLU")
    report.add_argument("--topology", help="the topology's name, for the plot's title (a "
                                           "decision log does not record it)")
    report.add_argument("--json", action="store_true", help="print the summary as JSON")
    report.set_defaults(func=run_shadow_report)


def _client(args: argparse.Namespace) -> ControllerClient:
    try:
        return ControllerClient(args.url, args.token, ca_file=args.ca_file)
    except ApiError as error:
        raise CliError(str(error)) from None


def _call(args: argparse.Namespace, call: Callable[[ControllerClient], Any]) -> Any:
    """``call(client)``; any failure is one line."""
    try:
        return call(_client(args))
    except ApiError as error:
        raise CliError(str(error)) from None


def _answer(url: str, path: str, format_answer) -> str:
    """``format_answer()``, or one line when the answer lacks what a controller sends."""
    try:
        return format_answer()
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CliError(f"{url}{path}: not the answer of a ryute controller "
                       f"({type(error).__name__}: {error})") from None


def _show(args: argparse.Namespace, document: Any, path: str, format_answer) -> int:
    """The raw JSON with ``--json``, else ``format_answer()`` (one line when the answer lacks
    what a controller sends)."""
    print(json.dumps(document, indent=1) if args.json else _answer(args.url, path, format_answer))
    return 0


def run_status(args: argparse.Namespace) -> int:
    s = _call(args, ControllerClient.status)
    return _show(args, s, endpoints.STATUS.path, lambda: _status_text(s))


def _status_text(s: dict[str, Any]) -> str:
    health = s["health"]
    trust = "trusted" if health["trusted"] else "untrusted: " + "; ".join(health["reasons"])
    expected, missing = s.get("expected_switches"), s.get("missing_switches") or []
    switches = f"{s['switches']} of {expected}" if expected is not None else f"{s['switches']}"
    lines = [f"mode        {s['mode']} (installed: {s['source']})",
             f"model       {s['model'] or 'none'} ({trust})",
             *([f"            {s['model_resolved']}"] if s.get("model_resolved") else []),
             f"network     {switches} switches, {s['links']} links, {s['hosts']} hosts "
             f"(topology {s['topology'] or 'discovered'}, version {s['topology_version']})"]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8
                                          else "")
        lines.append(f"missing     {len(missing)} switches not connected: {shown}")
    lines.append(f"MLU         {_status_mlu(s, missing)}")
    return "\n".join(lines)


def _status_mlu(s: dict[str, Any], missing: list[str]) -> str:
    """The measured MLU, or why there is none (no switch, no statistics yet)."""
    if s["switches"] == 0:
        return "- (no switches connected: nothing measured)"
    if s.get("last_statistics") is None or s.get("mlu") is None:
        return "- (no statistics yet)"
    partial = f" (measured without the {len(missing)} missing switches)" if missing else ""
    return f"{s['mlu']:.3f}{partial}"


def run_mode(args: argparse.Namespace) -> int:
    answer = _call(args, lambda client: client.set_mode(
        args.mode, fraction=args.fraction, step=args.step, ingress=args.ingress))
    return _show(args, answer, endpoints.SET_MODE.path, lambda: _mode_text(answer))


def _mode_text(answer: dict[str, Any]) -> str:
    text = f"mode {answer['mode']} (installed now: {answer['source']})"
    rollout = answer.get("rollout")  # absent from older controllers
    if rollout:
        where = f" of the OD pairs entering at {', '.join(rollout['ingress'])}" \
            if rollout["ingress"] else ""
        text += f"\nrollout     {rollout['fraction']:.0%} of the weight{where} on the agent's split"
        if rollout["step"]:
            text += f", widened by {rollout['step']:.0%} every {rollout['widen_after']} good " \
                    "intervals"
        if rollout["rolled_back"]:
            text += f"\nrolled back {rollout['rolled_back']}"
    return text


def run_decisions(args: argparse.Namespace) -> int:
    answer = {"decisions": _call(args, lambda client: client.decisions(args.limit))}
    return _show(args, answer, endpoints.DECISIONS.path, lambda: _decisions_text(answer))


def _decisions_text(answer: dict[str, Any]) -> str:
    lines = [f"{'seq':>6} {'mode':6} {'source':10} {'fallback':>8} {'agent':>8} {'measured':>8}  "
             "reasons (and what was done)"]
    for d in answer["decisions"]:
        predicted = d["predicted_mlu"]
        why = "; ".join(d["reasons"])
        if d.get("action"):  # absent from the records of older controllers
            why += f" -> {d['action']}" if why else d["action"]
        lines.append(f"{d['seq']:>6} {d['mode']:6} {d['source']:10} "
                     f"{_num(predicted['fallback'])} {_num(predicted['agent'])} "
                     f"{_num(d['measured_mlu'])}  {why}")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return f"{value:>8.3f}" if value is not None else f"{'-':>8}"


def run_links(args: argparse.Namespace) -> int:
    topology = _call(args, ControllerClient.topology)
    return _show(args, topology, endpoints.TOPOLOGY.path, lambda: _links_text(topology))


def _links_text(topology: dict[str, Any]) -> str:
    """The topology's links, busiest first; without a topology yet, the discovered ones."""
    graph_links = topology.get("graph_links")
    if graph_links is None:
        rows = [f"{link['src_name']:>12} -> {link['dst_name']:<12} port {link['src_port']} -> "
                f"{link['dst_port']}" for link in topology["links"]]
        return "\n".join([f"{len(rows)} discovered links (no topology yet: no loads)", *rows])
    lines = [f"{'link':>27} {'capacity':>10} {'load':>10} {'util':>7}  state"]
    for link in sorted(graph_links, key=lambda link: -link["utilization"]):
        lines.append(f"{link['src']:>12} -> {link['dst']:<12} {link['capacity_mbps']:>10.1f} "
                     f"{link['load_mbps']:>10.1f} {link['utilization']:>7.1%}  "
                     f"{'up' if link['up'] else 'DOWN'}")
    lines.append(f"{len(graph_links)} links (Mbit/s as the switches carry them), "
                 f"{sum(not link['up'] for link in graph_links)} down")
    missing = (topology.get("mismatch") or {}).get("missing_links") or []
    if missing:
        lines.append(f"not discovered: {', '.join(f'{u}->{v}' for u, v in missing[:8])}"
                     + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""))
    return "\n".join(lines)


def run_paths(args: argparse.Namespace) -> int:
    answer = _call(args, ControllerClient.paths)
    pairs = answer.get("od_pairs") if isinstance(answer.get("od_pairs"), list) else None
    if args.od and pairs is not None:
        pairs = [p for p in pairs if isinstance(p, dict) and f"{p.get('src')}-{p.get('dst')}"
                 == args.od]
        if not pairs:
            raise CliError(f"--od {args.od}: no such OD pair (SRC-DST, switch names as in "
                           "ryute paths)")
        answer = {**answer, "od_pairs": pairs}
    return _show(args, answer, endpoints.PATHS.path, lambda: _paths_text(answer))


def _paths_text(answer: dict[str, Any]) -> str:
    if not answer["od_pairs"]:
        return "no paths (no topology yet)"
    lines = []
    for pair in answer["od_pairs"]:
        lines.append(f"{pair['src']} -> {pair['dst']}")
        for path in pair["paths"]:
            weight = f"{path['weight']:>6.1%}" if path["weight"] is not None else f"{'-':>6}"
            lines.append(f"  {path['id']:>5} {weight}  {' '.join(path['nodes'])}")
    return "\n".join(lines)


def run_traffic(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise CliError(f"--top must be at least 1, got {args.top}")
    matrix = _call(args, lambda client: client.traffic(args.units))
    return _show(args, matrix, endpoints.TRAFFIC.path, lambda: _traffic_text(matrix, args.top))


def _traffic_text(matrix: dict[str, Any], top: int) -> str:
    nodes, rates = matrix["nodes"], matrix["od_mbps"]
    if not nodes or matrix.get("updated_at") is None:
        return "no traffic measured yet"
    pairs = sorted(((float(rates[i][j]), src, dst) for i, src in enumerate(nodes)
                    for j, dst in enumerate(nodes) if i != j), key=lambda row: -row[0])
    total = sum(rate for rate, _, _ in pairs)
    unit = "Mbit/s" if matrix.get("units") == "network" else "topology units"
    lines = [f"{'src':>12} -> {'dst':<12} {'rate':>10} {'share':>7}"]
    lines += [f"{src:>12} -> {dst:<12} {rate:>10.2f} {rate / total if total else 0:>7.1%}"
              for rate, src, dst in pairs[:top]]
    lines.append(f"top {min(top, len(pairs))} of {len(pairs)} OD pairs; total {total:.2f} "
                 f"{unit}, measured {time.time() - matrix['updated_at']:.0f} s ago")
    return "\n".join(lines)


# -- shadow report ---------------------------------------------------------------------------
def read_log(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise CliError(f"{path}: cannot read: {error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            raise CliError(f"{path}:{number}: not JSON") from None
        problem = _record_problem(record)
        if problem:
            raise CliError(f"{path}:{number}: not a decision record ({problem})")
        records.append(record)
    if not records:
        raise CliError(f"{path}: no decisions")
    return records


def _record_problem(record: Any) -> str | None:
    """What a decision-log line lacks (None: it is a record the report can use)."""
    def number(value: Any) -> bool:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                 and math.isfinite(value))

    if not isinstance(record, dict):
        return "not a JSON object"
    predicted = record.get("predicted_mlu")
    if not isinstance(predicted, dict) or "fallback" not in predicted:
        return "no predicted_mlu.fallback"
    if not all(number(predicted.get(key)) for key in ("fallback", "agent")) \
            or not number(record.get("measured_mlu")):
        return "an MLU that is not a number"
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        return "no integer seq"
    if not isinstance(record.get("source", ""), str):
        return "source must be a string"
    if record.get("mode", "shadow") not in endpoints.MODES:
        return f"mode must be one of {', '.join(endpoints.MODES)}"
    changes = record.get("mode_changes")
    if changes is not None and not (isinstance(changes, list)
                                    and all(isinstance(c, dict) for c in changes)):
        return "mode_changes must be a list of objects"
    reasons = record.get("reasons", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        return "reasons must be a list of strings"
    return None


def shadow_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the agent would have changed (judged on the shadow records' measured matrices),
    what it did in active mode, and where the mode switched."""
    shadow = [r for r in records if _mode(r) == "shadow"]
    summary: dict[str, Any] = {"decisions": len(records), **_summary(shadow)}
    summary.update( installed=_counts(r.get("source", "?")
                                                             for r in records),
                   unhealthy_reasons=_reason_counts(records),
                   by_mode={mode: _mode_summary([r for r in records if _mode(r) == mode])
                            for mode in endpoints.MODES if any(_mode(r) == mode
                                                                for r in records)},
                   mode_switches=mode_switches(records))
    return summary


def _mode(record: dict[str, Any]) -> str:
    return record.get("mode", "shadow")  # the records of older controllers were all shadow


def _mode_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r["measured_mlu"] for r in records if r.get("measured_mlu") is not None]
    return {"decisions": len(records), "first_seq": records[0]["seq"],
            "last_seq": records[-1]["seq"],
            "installed": _counts(r.get("source", "?") for r in records),
            "measured_mlu_mean": _mean(measured), "measured_mlu_max": max(measured, default=None)}


def mode_switches(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every record whose mode differs from the one before it: ``seq``, ``from``, ``to``, and
    the operator's change it carries (``by``, ``at``; none for a rollback by the controller)."""
    switches = []
    for before, record in zip(records, records[1:]):
        if _mode(record) == _mode(before):
            continue
        asked = [c for c in record.get("mode_changes") or [] if c.get("to") == _mode(record)]
        switch = {"seq": record["seq"], "time": record.get("time"), "from": _mode(before),
                  "to": _mode(record), "by": None, "at": None}
        if asked:
            switch.update(by=asked[-1].get("by"), at=asked[-1].get("at"))
        elif record.get("action"):
            switch["by"] = f"the controller: {record['action']}"
        switches.append(switch)
    return switches


def _counts(values: Any) -> dict[str, int]:
    values = list(values)
    return {value: values.count(value) for value in sorted(set(values))}


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Fallback against agent, both predicted on the same measured matrices."""
    both = [r for r in records if r["predicted_mlu"].get("agent") is not None
            and r["predicted_mlu"].get("fallback") is not None]
    fallback = [r["predicted_mlu"]["fallback"] for r in both]
    agent = [r["predicted_mlu"]["agent"] for r in both]
    measured = [r["measured_mlu"] for r in records if r.get("measured_mlu") is not None]
    better = [a < f * (1 - 1e-9) for a, f in zip(agent, fallback)]
    return {
        "with_agent": len(both),
        "differed": sum(1 for r in both if r.get("differ")),
        "agent_trusted": sum(1 for r in records if r.get("trusted")),
        "agent_better": sum(better),
        "predicted_mlu_mean": {"fallback": _mean(fallback), "agent": _mean(agent)},
        "predicted_mlu_max": {"fallback": max(fallback, default=None),
                              "agent": max(agent, default=None)},
        "measured_mlu_mean": _mean(measured),
        "would_change_mean_mlu_by": _change(_mean(agent), _mean(fallback)) if both else None,
    }


def _change(agent: float | None, fallback: float | None) -> float | None:
    """agent / fallback - 1, or None when either is missing or the fallback's is 0."""
    return agent / fallback - 1 if agent is not None and fallback else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _reason_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        for reason in record.get("reasons", []):
            key = reason.split(":")[0]
            counts[key] = counts.get(key, 0) + 1
    return counts


def run_shadow_report(args: argparse.Namespace) -> int:
    records = read_log(args.log)
    summary = shadow_summary(records)
    if args.plot:
        plot_shadow(records, args.plot, args.topology)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    mean, peak = summary["predicted_mlu_mean"], summary["predicted_mlu_max"]
    change = summary["would_change_mean_mlu_by"]
    lines = [_modes_line(summary), *(_switch_line(s) for s in summary["mode_switches"])]
    shadow = summary["by_mode"].get("shadow")
    if shadow is None:
        lines.append("no shadow records: nothing to compare the agent's decisions with")
    lines += [
        f"shadow: {shadow['decisions'] if shadow else 0} decisions, {summary['with_agent']} "
        f"with an agent decision; they differed {summary['differed']} times; agent trusted in "
        f"{summary['agent_trusted']}.",
        f"{'':22}{'fallback':>10}{'agent':>10}",
        f"{'predicted MLU, mean':22}{_num(mean['fallback']):>10}{_num(mean['agent']):>10}",
        f"{'predicted MLU, max':22}{_num(peak['fallback']):>10}{_num(peak['agent']):>10}",
        f"measured MLU (installed decisions), mean: {_num(summary['measured_mlu_mean']).strip()}",
        "activating the agent would have changed the mean predicted MLU by "
        + (f"{change:+.1%}" if change is not None and math.isfinite(change) else "-")
        + f" (better in {summary['agent_better']} of {summary['with_agent']} intervals)",
        *(_mode_line(mode, part) for mode, part in summary["by_mode"].items()
          if mode != "shadow"),
        "installed: " + ", ".join(f"{k} {v}" for k, v in summary["installed"].items()),
    ]
    if summary["unhealthy_reasons"]:
        lines.append("unhealthy: " + ", ".join(f"{k} ({v})"
                                               for k, v in summary["unhealthy_reasons"].items()))
    if args.plot:
        lines.append(f"plot written to {args.plot}")
    print("\n".join(lines))
    return 0


def _modes_line(summary: dict[str, Any]) -> str:
    parts = [f"{part['decisions']} in {mode} (seq {part['first_seq']}-{part['last_seq']})"
             if len(summary["mode_switches"]) < 2 else f"{part['decisions']} in {mode}"
             for mode, part in summary["by_mode"].items()]
    return f"{summary['decisions']} decisions: " + ", ".join(parts)


def _switch_line(switch: dict[str, Any]) -> str:
    when = switch["at"] or switch["time"]
    at = f" at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(when))}" if when else ""
    by = f", by {switch['by']}" if switch["by"] else ""
    return f"--- switched {switch['from']} -> {switch['to']} from seq {switch['seq']}{at}{by}"


def _mode_line(mode: str, part: dict[str, Any]) -> str:
    installed = ", ".join(f"{k} {v}" for k, v in part["installed"].items())
    return (f"{mode}: {part['decisions']} decisions, installed {installed}; measured MLU mean "
            f"{_num(part['measured_mlu_mean']).strip()}, max "
            f"{_num(part['measured_mlu_max']).strip()}")


def plot_title(records: list[dict[str, Any]], topology: str | None) -> str:
    """Topology, model(s) and the intervals the plot covers."""
    models = sorted({r.get("model") or "no model" for r in records})
    first, last = records[0].get("time"), records[-1].get("time")
    span = ""
    if isinstance(first, (int, float)) and isinstance(last, (int, float)):
        span = (f", {time.strftime('%Y-%m-%d %H:%M', time.gmtime(first))} to "
                f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(last))} UTC")
    return (f"{topology or 'topology not given'}, model {', '.join(models)}\n"
            f"{len(records)} intervals (seq {records[0]['seq']}-{records[-1]['seq']}){span}")


def plot_shadow(records: list[dict[str, Any]], path: Path, topology: str | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seq = [r["seq"] for r in records]
    figure, axes = plt.subplots(figsize=(8, 4))
    for key, label in (("fallback", "fallback, predicted"), ("agent", "agent, predicted")):
        axes.plot(seq, [r["predicted_mlu"].get(key) or math.nan for r in records], label=label)
    axes.plot(seq, [r.get("measured_mlu") or math.nan for r in records], "k.", label="measured")
    for switch in mode_switches(records):
        axes.axvline(switch["seq"] - 0.5, color="tab:red", linestyle="--", linewidth=1)
        axes.annotate(f"{switch['from']} -> {switch['to']}", (switch["seq"] - 0.5, 1),
                      xycoords=("data", "axes fraction"), xytext=(3, -12),
                      textcoords="offset points", color="tab:red", fontsize=8)
    for mode, colour in (("active", "tab:green"), ("external", "tab:purple")):
        spans = [r["seq"] for r in records if _mode(r) == mode]
        for start, end in _runs(spans):
            axes.axvspan(start - 0.5, end + 0.5, color=colour, alpha=0.08,
                         label=f"{mode} mode" if start == spans[0] else None)
    axes.set_title(plot_title(records, topology), fontsize=10)
    axes.set_xlabel("decision (seq)")
    axes.set_ylabel("MLU")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted integers as (first, last)."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs

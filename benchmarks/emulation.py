"""The full emulation on Abilene: the shipped agent against the fallback on the same replay, in
Mininet with Open vSwitch, with the offered-load error and the sim-to-emulation fidelity.

    sudo .venv/bin/python -m benchmarks.emulation [--out benchmarks/results/emulation.json]
        [--interval 10] [--duration 120] [--traffic synthetic|FILE] [--model default] [--mtu 9000]

Needs root and Open vSwitch (like the integration tests); takes about 2 x (duration + 20 s)
plus a minute of set-up. The JSON holds the whole ``ryute emulate`` result (per phase and per
interval) under ``emulation`` and the headline numbers under ``summary``; the load average
of the machine before and after says how busy it was (2 shared cores here).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import emit
from lab.emulate import EmulationConfig, run_emulation
from lab.replay import DEFAULT_FLOWS


def headline(result: dict) -> dict:
    phases = {}
    for name, phase in result["phases"].items():
        s = phase["summary"]
        phases[name] = {
            "measured_mlu_mean": s["measured_mlu"],
            "predicted_mlu_mean": s["predicted_mlu"],
            "loss": s["loss"], "delivered_mbps_mean": s["delivered_mbps"],
            "planned_mbps_mean": s["planned_mbps"],
            "offered_error_abs_mean": s["offered_error_abs_mean"],
            "offered_error_abs_max": s["offered_error_abs_max"],
            "offered_error_od_median": s["offered_error_od_median"],
            "offered_error_switches_abs_mean": s["offered_error_switches_abs_mean"],
            "fidelity": s["fidelity"],
            "agent_installed": f"{s['agent_installed']}/{s['decisions']}",
            "agent_reasons": s["agent_untrusted_reasons"],
            "max_sender_lag_s": s["max_sender_lag_s"],
        }
    return {"traffic_scale": result["traffic_scale"], "fallback_only": result["fallback_only"],
            "model_id": result["model_id"], "phases": phases,
            "comparison": result["comparison"], "load_average": result["load_average"],
            "elapsed_s": result["elapsed_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--topology", default="abilene")
    parser.add_argument("--traffic", default="synthetic")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--model", default="default")
    parser.add_argument("--flows", type=int, default=DEFAULT_FLOWS)
    parser.add_argument("--mtu", type=int, default=9000,
                        help="jumbo frames by default: 6x fewer packets for the userspace "
                             "switches on this 2-core machine (1500: standard frames)")
    parser.add_argument("--plot", type=Path, help="PNG of measured MLU per phase")
    args = parser.parse_args()
    config = EmulationConfig(topology=args.topology, traffic=args.traffic,
                             interval_s=args.interval, duration_s=args.duration,
                             model=None if args.model == "none" else args.model,
                             flows=args.flows, mtu=args.mtu, plot_out=args.plot)
    result = run_emulation(config, say=lambda line: print(line, flush=True))
    emit({"benchmark": "emulation", "summary": headline(result), "emulation": result},
         args.out)


if __name__ == "__main__":
    main()

"""``ryute demo``: the main job on the embedded default.

At this stage: Abilene in Mininet (Open vSwitch userspace switches) with the ryute controller,
which connects every switch, discovers the links by LLDP and forwards through its tunnel
pipeline with the fallback's routing; the demo prints the discovered topology against the
catalog's, pings between every pair of hosts, and tears everything down.
"""
from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="start a catalog topology in Mininet with the controller and show what it sees")
    parser.add_argument("--topology", default="abilene", help="catalog name or file (default abilene)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="keep the network up this many seconds before tearing down")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim.testbed import Testbed

    started = time.monotonic()
    print(f"Starting {args.topology} in Mininet with the ryute controller ...")
    with Testbed(args.topology) as testbed:
        expected = len(testbed.graph.edges)
        view = testbed.wait_for(
            lambda: (v := testbed.get("/te/v1/topology")) and len(v["links"]) >= expected and v,
            timeout_s=60)
        print(f"{len(view['switches'])} switches connected, {len(view['links'])} directed links "
              f"discovered by LLDP (topology has {expected}), "
              f"in {time.monotonic() - started:.1f} s\n")
        print(f"{'link':32} {'ports':>9} {'capacity':>14}")
        for link in view["links"]:
            capacity = testbed.graph.edges[link["src_name"], link["dst_name"]]["capacity_mbps"]
            name = f"{link['src_name']} -> {link['dst_name']}"
            print(f"{name:32} {link['src_port']:>4}->{link['dst_port']:<4} "
                  f"{capacity:>9,.0f} Mb/s")
        mismatch = {k: v for k, v in view["mismatch"].items() if v}
        print("\nDiscovered network matches the topology." if not mismatch
              else f"\nMismatch with the topology file: {mismatch}")
        loss = testbed.net.pingAll(timeout=2)
        pairs = len(testbed.net.hosts) * (len(testbed.net.hosts) - 1)
        print(f"Ping between all {pairs} host pairs over MPLS tunnels (fallback routing): "
              f"{100 - loss:.0f} % delivered")
        print(f"Live REST status while it runs: {testbed.rest_url}/te/v1/status "
              f"(controller log: {testbed.controller_log})")
        if args.hold:
            time.sleep(args.hold)
    print("Network and controller stopped; nothing left behind.")
    return 0 if not mismatch and loss == 0 else 1

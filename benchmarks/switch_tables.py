"""What the forwarding pipeline asks of each switch, per topology (JSON on stdout or --json).

Counted on ``controller.pipeline``'s own specs (the rules and groups the controller installs),
for every switch, with every link's ports known and one host per switch: OpenFlow table 0
(control rules + MPLS label rules: one per candidate path and detour tunnel through the switch),
table 1 (one rule per host), table 2 (the local hosts), SELECT groups (one per destination
switch) and their buckets (one per candidate path, at most ``k``), and local repair's
fast-failover groups (one per hop a path takes out of the switch towards a destination, a
few more for detours back out of the in-port; ``--no-local-repair``: none). The README's switch
requirements quote it.

    python -m benchmarks.switch_tables --topologies "abilene;geant;wan:n=100,edge=100" --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from controller import pipeline
from controller.pipeline import Fabric, Host
from sim.decision import Decision
from sim.paths import PathSet
from topologies.catalog import load_topology


def fabric_of(spec: str, k: int, local_repair: bool = True) -> Fabric:
    graph = load_topology(spec)
    path_set = PathSet.from_graph(graph, k=k)
    dpid_of = {node: int(graph.nodes[node]["dpid"]) for node in graph.nodes}
    ports: dict = {}
    for u, v in graph.edges:  # port numbers: the neighbour's position, as good as any
        ports[u, v] = (list(graph.successors(u)).index(v) + 1,
                       list(graph.successors(v)).index(u) + 1)
    hosts = {f"h{dpid}": Host(mac=f"00:00:00:00:{dpid >> 8 & 0xff:02x}:{dpid & 0xff:02x}",
                              ip=f"10.{dpid >> 8 & 0xff}.{dpid & 0xff}.1", dpid=dpid, port=100)
             for node, dpid in dpid_of.items() if graph.nodes[node].get("hosts", True)}
    return Fabric(path_set, dpid_of, ports, {host.mac: host for host in hosts.values()},
                  local_repair)


def tables(spec: str, k: int, local_repair: bool = True) -> dict:
    fabric = fabric_of(spec, k, local_repair)
    path_set = fabric.path_set
    repair = pipeline.local_repair(fabric)
    labels = pipeline.label_flows_by_switch(fabric, repair)
    decision = Decision.uniform(path_set)
    groups = pipeline.groups_by_switch(fabric, decision, repair)
    per_switch: dict[str, list[int]] = {"table0": [], "table1": [], "table2": [], "groups": [],
                                        "failover_groups": [], "buckets_max": []}
    for dpid in fabric.dpid_of.values():
        rules = pipeline.desired_flows(fabric, dpid, labels).values()
        for table in (0, 1, 2):
            per_switch[f"table{table}"].append(sum(rule.table == table for rule in rules))
        mine = [g for g in groups.get(dpid, {}).values() if g.kind == pipeline.SELECT]
        per_switch["groups"].append(len(mine))
        per_switch["failover_groups"].append(len(groups.get(dpid, {})) - len(mine))
        per_switch["buckets_max"].append(max((len(g.buckets) for g in mine), default=0))
    return {"topology": spec, "switches": path_set.n_nodes, "links": path_set.n_links,
            "k": k, "local_repair": local_repair, "paths": path_set.n_paths,
            "detour_tunnels": len(repair.tunnels),
            "mpls_labels": path_set.n_paths + len(repair.tunnels),
            **{f"{name}_max": int(np.max(values)) for name, values in per_switch.items()
               if name != "buckets_max"},
            **{f"{name}_mean": round(float(np.mean(values)), 1) for name, values in
               per_switch.items() if name != "buckets_max"},
            "buckets_per_group_max": int(np.max(per_switch["buckets_max"]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default="abilene;geant",
                        help="topology specs separated by ';' (a spec may hold commas)")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--no-local-repair", dest="local_repair", action="store_false",
                        help="the pipeline without local repair's groups and tunnels")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    specs = [spec for spec in args.topologies.split(";") if spec]
    results = {"benchmark": "switch_tables", "results": [tables(spec, args.k, args.local_repair)
                                                       for spec in specs]}
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

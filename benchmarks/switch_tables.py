"""What the forwarding pipeline asks of each switch, per topology (JSON on stdout or --json).

Counted on ``controller.pipeline``'s own specs (the rules and groups the controller installs),
for every switch, with every link's ports known and one host per switch: OpenFlow table 0
(control rules + MPLS label rules: one per candidate path through the switch), table 1 (one
rule per host), table 2 (the local hosts), SELECT groups (one per destination switch) and
their buckets (one per candidate path, at most ``k``). The README's switch requirements quote it.

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


def fabric_of(spec: str, k: int) -> Fabric:
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
    return Fabric(path_set, dpid_of, ports, {host.mac: host for host in hosts.values()})


def tables(spec: str, k: int) -> dict:
    fabric = fabric_of(spec, k)
    path_set = fabric.path_set
    labels = pipeline.label_flows_by_switch(fabric)
    decision = Decision.uniform(path_set)
    groups = pipeline.groups_by_switch(fabric, decision)
    per_switch = {"table0": [], "table1": [], "table2": [], "groups": [], "buckets_max": []}
    for dpid in fabric.dpid_of.values():
        rules = pipeline.desired_flows(fabric, dpid, labels).values()
        for table in (0, 1, 2):
            per_switch[f"table{table}"].append(sum(rule.table == table for rule in rules))
        mine = groups.get(dpid, {})
        per_switch["groups"].append(len(mine))
        per_switch["buckets_max"].append(max((len(g.buckets) for g in mine.values()), default=0))
    return {"topology": spec, "switches": path_set.n_nodes, "links": path_set.n_links,
            "k": k, "paths": path_set.n_paths, "mpls_labels": path_set.n_paths,
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
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    specs = [spec for spec in args.topologies.split(";") if spec]
    results = {"benchmark": "switch_tables", "results": [tables(spec, args.k) for spec in specs]}
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

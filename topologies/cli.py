"""``ryute topology ...`` and ``ryute data ...``: the catalog and traffic files from the shell.

User errors are raised as TopologyError/TrafficError; ``lab.cli`` prints them as one
line and exits 2. Heavy imports (networkx, numpy) wait until a command runs.
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    topology = subparsers.add_parser("topology", help="list and inspect topologies",
                                     description="The topology catalog.")
    commands = topology.add_subparsers(dest="topology_command", metavar="COMMAND",
                                       required=True)
    commands.add_parser("list", help="built-in topologies and their parameters") \
        .set_defaults(func=topology_list)
    show = commands.add_parser("show", help="nodes and links of a topology",
                               description="Show a built-in (e.g. fat-tree:k=4) or a file "
                               "(.json, SNDlib .xml, Topology Zoo .graphml, Repetita .graph).")
    show.add_argument("spec", metavar="NAME|FILE")
    _add_params(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of tables")
    show.set_defaults(func=topology_show)

    data = subparsers.add_parser("data", help="traffic matrix files (.tm.npz)",
                                 description="Import and generate traffic matrix series.")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    sndlib = commands.add_parser(
        "import-sndlib", help="convert SNDlib demand XML files to .tm.npz",
        description="Read SNDlib demand matrices (a directory, .tgz or .zip of XML files, one "
        "per interval) and write them in the topology's node order.")
    sndlib.add_argument("src", metavar="SRC")
    _add_topology(sndlib)
    sndlib.add_argument("--out", required=True, metavar="OUT.tm.npz")
    sndlib.set_defaults(func=data_import_sndlib)

    flows = commands.add_parser(
        "import", help="convert flow exports (nfdump, pmacct) or SNDlib files to .tm.npz",
        description="Aggregate flow records into OD matrices by ingress and egress node "
        "(--mapping: router addresses and prefixes to nodes; docs/formats.md), or read SNDlib "
        "demand files. Formats: nfdump (`nfdump -o csv` output), pmacct (print plugin, "
        "print_output csv or json), sndlib (as import-sndlib).")
    flows.add_argument("src", nargs="+", metavar="SRC",
                       help="files, or folders of files (sndlib: one folder or archive)")
    flows.add_argument("--format", required=True, choices=("nfdump", "pmacct", "sndlib"))
    _add_topology(flows)
    flows.add_argument("--mapping", metavar="MAP.json",
                       help="nfdump, pmacct: {\"routers\": {ADDRESS: NODE}, \"prefixes\": "
                            "{PREFIX: NODE}}")
    flows.add_argument("--interval", type=int, default=300,
                       help="nfdump, pmacct: seconds per matrix (default 300)")
    flows.add_argument("--sampling-rate", type=float, default=1.0, dest="sampling_rate",
                       help="nfdump, pmacct: multiply the bytes by this (1 in N packet "
                            "sampling not yet scaled by the collector; default 1)")
    flows.add_argument("--out", required=True, metavar="OUT.tm.npz")
    flows.set_defaults(func=data_import)

    synthetic = commands.add_parser(
        "synthetic", help="generate a seeded synthetic series",
        description="Gravity model with a diurnal cycle, bursts and noise; --load is the mean "
        "link utilization if routed on min-hop paths.")
    _add_topology(synthetic)
    synthetic.add_argument("--steps", type=int, required=True, help="number of matrices")
    synthetic.add_argument("--seed", type=int, default=0, help="default 0")
    synthetic.add_argument("--out", required=True, metavar="OUT.tm.npz")
    synthetic.add_argument("--interval", type=int, default=300,
                           help="seconds per matrix (default 300)")
    synthetic.add_argument("--load", type=float, default=0.3, help="default 0.3")
    synthetic.set_defaults(func=data_synthetic)

    join = commands.add_parser(
        "join", help="one series of several .tm.npz files (e.g. controller recordings)",
        description="Concatenate .tm.npz files in time order (folders: all their .tm.npz, "
        "as `ryute controller --record DIR` writes them); same nodes and interval.")
    join.add_argument("src", nargs="+", metavar="FILE_OR_DIR")
    join.add_argument("--out", required=True, metavar="OUT.tm.npz")
    join.set_defaults(func=data_join)

    info = commands.add_parser("show", help="summary of a .tm.npz file")
    info.add_argument("path", metavar="FILE.tm.npz")
    info.set_defaults(func=data_show)


def _add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="topology parameter, repeatable (e.g. --param k=6)")


def _add_topology(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, metavar="NAME|FILE")
    _add_params(parser)


def _load(args: argparse.Namespace):
    from topologies.catalog import TopologyError, load_topology

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TopologyError(f"--param must look like KEY=VALUE, got '{item}'")
        params[key] = value
    return load_topology(getattr(args, "spec", None) or args.topology, **params)


# -- topology ------------------------------------------------------------------------------

def topology_list(args: argparse.Namespace) -> int:
    from topologies.catalog import describe_builtins

    rows = [(b["name"], ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in b["parameters"].items()) or "-",
             b["description"]) for b in describe_builtins()]
    _table(("name", "parameters", "description"), rows)
    print("\nAlso files: .json (shared format), .xml (SNDlib), .graphml (Topology Zoo), "
          ".graph (Repetita).")
    return 0


def topology_show(args: argparse.Namespace) -> int:
    from topologies.catalog import topology_summary

    summary = topology_summary(_load(args))
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"{summary['name']}: {summary['num_nodes']} nodes, {summary['num_physical_links']} "
          f"links ({summary['num_links']} directed), "
          f"{summary['total_capacity_mbps']:g} Mbit/s in total")
    print()
    _table(("dpid", "node", "hosts", "lon", "lat"), [_node_row(n) for n in summary["nodes"]])
    print()
    _table(("src", "dst", "Mbit/s", "Mbit/s back"), _link_rows(summary["links"]))
    return 0


def _node_row(node: dict[str, Any]) -> tuple[Any, ...]:
    lon, lat = (f"{x:.2f}" for x in node["pos"]) if node["pos"] else ("", "")
    return node["dpid"], node["name"], "yes" if node["hosts"] else "no", lon, lat


def _link_rows(links: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """One row per physical link, the capacity of each direction."""
    capacity = {(link["src"], link["dst"]): link["capacity_mbps"] for link in links}
    rows, seen = [], set()
    for (src, dst), forward in capacity.items():
        if frozenset((src, dst)) not in seen:
            seen.add(frozenset((src, dst)))
            rows.append((src, dst, f"{forward:g}", f"{capacity[dst, src]:g}"))
    return rows


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# -- data ----------------------------------------------------------------------------------

def data_import_sndlib(args: argparse.Namespace) -> int:
    from topologies.traffic import read_sndlib_archive, save_traffic

    graph = _load(args)
    series = read_sndlib_archive(args.src).aligned_to(graph)
    path = save_traffic(series, args.out)
    print(f"wrote {path}: {len(series)} matrices, {len(series.nodes)} nodes, "
          f"{int(series.valid_mask.sum())} with measurements")
    return 0


def data_import(args: argparse.Namespace) -> int:
    from topologies.traffic import TrafficError, save_traffic

    if args.format == "sndlib":
        if len(args.src) != 1 or args.mapping:
            raise TrafficError("--format sndlib takes one folder or archive and no --mapping")
        args.src = args.src[0]
        return data_import_sndlib(args)
    if not args.mapping:
        raise TrafficError(f"--format {args.format} needs --mapping (router addresses and "
                           "prefixes to nodes; see docs/formats.md)")
    from topologies.flows import import_flows

    graph = _load(args)
    series, report = import_flows(args.format, args.src, args.mapping,
                                  [str(node) for node in graph.nodes], args.interval,
                                  args.sampling_rate)
    path = save_traffic(series, args.out)
    print(f"wrote {path}: {len(series)} matrices of {series.interval_s} s from "
          f"{series.times[0]}, {len(series.nodes)} nodes, {int(series.valid_mask.sum())} with "
          f"traffic; {report.summary()}")
    return 0


def data_synthetic(args: argparse.Namespace) -> int:
    from topologies.traffic import save_traffic, synthetic_traffic

    series = synthetic_traffic(_load(args), steps=args.steps, seed=args.seed,
                               interval_s=args.interval, load=args.load)
    path = save_traffic(series, args.out)
    print(f"wrote {path}: {len(series)} matrices, {len(series.nodes)} nodes, mean total "
          f"{series.tm.sum(axis=(1, 2)).mean():.1f} Mbit/s")
    return 0


def data_join(args: argparse.Namespace) -> int:
    from topologies.traffic import join_series, save_traffic

    series = join_series(args.src)
    path = save_traffic(series, args.out)
    print(f"wrote {path}: {len(series)} matrices, {len(series.nodes)} nodes, "
          f"{int(series.valid_mask.sum())} with measurements")
    return 0


def data_show(args: argparse.Namespace) -> int:
    from topologies.traffic import load_traffic

    series = load_traffic(args.path)
    valid = series.valid_mask
    totals = series.tm.sum(axis=(1, 2))[valid]
    span = f"{series.times[0]} .. {series.times[-1]}" if series.times else "no times"
    print(f"{args.path}: {len(series)} matrices x {len(series.nodes)} nodes, "
          f"interval {series.interval_s or '?'} s, {span}")
    print(f"missing (all-zero) intervals: {int((~valid).sum())}")
    if totals.size:
        print(f"total demand Mbit/s: mean {totals.mean():.1f}, min {totals.min():.1f}, "
              f"max {totals.max():.1f}")
    return 0

"""The controller on real Open vSwitch in Mininet: how fast a new decision reaches every
switch, what a link failure costs the traffic, how much state each switch holds, and what
statistics polling costs.

    .venv/bin/python -m benchmarks.controller [--topologies abilene,geant,fat-tree:k=4]
        [--repeats 5] [--window 20] [--out benchmarks/results/controller.json]

Needs root and Open vSwitch (like the integration tests). Per topology (capacities divided by
``--scale``, 1000 by default, so GEANT's 10 Gbit/s links become 10 Mbit/s):

- ``state``: our rules per switch (per table) and groups/buckets per switch, read back with
  ``ovs-ofctl`` once every host is known (after a ``pingAll``).
- ``decision_to_groups``: a new decision is provoked by taking a link down (the fallback then
  moves every OD pair off it). Every switch's OpenFlow channel is recorded with ``ovs-ofctl
  --timestamp snoop`` (millisecond timestamps of the switch's copy of each message): from the
  first OFPT_PORT_STATUS the link's switches send, to the first and to the last
  OFPT_GROUP_MOD any switch receives. The link is chosen among those the fallback uses most
  (most weighted paths over it, from ``/te/v1/paths``), a different one each repetition; it
  comes back up after each repetition (``link_up``: same clocks; the decision then waits for
  LLDP to see the link again).
- ``outage``: during each failure, ``ping -i 0.01`` between two hosts whose fallback path
  crosses the link: lost echo requests x 10 ms, and the longest silence between replies.
- fat-tree:k=8 (80 switches, 512 directed links, 14 720 paths) is accepted but, on the
  2-core machines this was written on, the controller does not take it over: the run then
  reports what its log shows (discoveries, link timeouts, take-overs, disconnections).
- ``polling``: the controller's CPU time (utime + stime of its process) over a window with
  statistics every ``poll_s`` seconds, minus the same window after a restart with polling
  off (one poll an hour), per switch and poll; and from the snoop records, how long each
  switch takes to answer the port and flow statistics requests.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx

from api.client import ApiError
from benchmarks.common import emit
from lab.config import CAPACITY_SCALE
from lab.testbed import Testbed

COOKIE = 0x5259555445
DEFAULT_TOPOLOGIES = "abilene,geant,fat-tree:k=4"
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}): (OFP\w+)(?: (request|reply))?"
                    r".*?\(xid=(0x[0-9a-f]+)\)")


def _summary(values: list[float], digits: int = 1) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits),
            "n": len(values)}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Snoop:
    """``ovs-ofctl --timestamp snoop`` on every switch (it prints on stderr), into files
    parsed afterwards."""

    def __init__(self, switches: list[str]) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="ryute-snoop-")
        self.processes = {}
        for switch in switches:
            out = open(Path(self.dir.name) / switch, "w")  # noqa: SIM115 (closed in stop)
            self.processes[switch] = (subprocess.Popen(
                ["ovs-ofctl", "--timestamp", "snoop", switch], stdout=out,
                stderr=subprocess.STDOUT), out)
        time.sleep(1.0)  # connected

    def stop(self) -> dict[str, list[tuple[float, str, str | None, str]]]:
        """``{switch: [(time, message type, request|reply|None, xid)]}``."""
        for process, out in self.processes.values():
            process.terminate()
            process.wait(timeout=10)
            out.close()
        records = {}
        for switch in self.processes:
            rows = []
            for line in (Path(self.dir.name) / switch).read_text().splitlines():
                if (match := _STAMP.match(line)) is not None:
                    # local time, as ovs-ofctl prints it
                    at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
                    rows.append((at, match.group(2), match.group(3), match.group(4)))
            records[switch] = rows
        self.dir.cleanup()
        return records


def _rules_and_groups(testbed: Testbed) -> dict[str, Any]:
    per_table: dict[int, list[int]] = defaultdict(list)
    rules, groups, failover, buckets, others = [], [], [], [], 0
    for switch in sorted(testbed.bridges):
        flows = testbed.own_flows(switch, COOKIE)
        others += sum(1 for key in flows if key[0] in ("other", "duplicate"))
        ours = [key for key in flows if key[0] not in ("other", "duplicate")]
        rules.append(len(ours))
        tables = Counter(key[0] for key in ours)
        for table in (0, 1, 2):
            per_table[table].append(tables.get(table, 0))
        dumped = testbed.dump_groups(switch)
        groups.append(len(dumped))
        failover.append(sum(1 for group in dumped.values() if group.type == "ff"))
        buckets.append(sum(len(group.buckets) for group in dumped.values()))
    return {"switches": len(rules), "rules_per_switch": _summary(rules),
            "rules_total": sum(rules),
            "rules_per_table_per_switch": {f"table {t}": _summary(v)
                                           for t, v in sorted(per_table.items())},
            "groups_per_switch": _summary(groups),
            "failover_groups_per_switch": _summary(failover),
            "buckets_per_switch": _summary(buckets),
            "buckets_total": sum(buckets), "foreign_or_duplicate_rules": others}


def busiest_links(testbed: Testbed, count: int) -> list[tuple[str, str, str, str]]:
    """(u, v, src, dst): the links most weighted paths use, each with one OD pair over it;
    never a bridge (its failure would cut the network in two)."""
    bridges = {frozenset(map(str, link)) for link in nx.bridges(testbed.graph.to_undirected())}
    weight = Counter()
    pair_over: dict[frozenset, tuple[float, str, str]] = {}
    for od in testbed.api.paths()["od_pairs"]:
        for path in od["paths"]:
            if path["weight"]:
                for u, v in pairwise(path["nodes"]):
                    link = frozenset((u, v))
                    weight[link] += 1
                    # the pinged pair: all its traffic on this path if there is such a pair
                    if pair_over.get(link, (0.0,))[0] < path["weight"]:
                        pair_over[link] = (path["weight"], od["src"], od["dst"])
    chosen = []
    for link, _ in weight.most_common():
        if link in bridges:
            continue
        u, v = sorted(link)
        chosen.append((u, v, *pair_over[link][1:]))
        if len(chosen) == count:
            break
    return chosen


def _event(records, since: float, until: float) -> dict[str, Any] | None:
    """From the first port status after ``since`` to the group modifications that follow."""
    status = [at for rows in records.values() for at, kind, _, _ in rows
              if kind == "OFPT_PORT_STATUS" and since <= at < until]
    if not status:
        return None
    start = min(status)
    mods = [(at, switch) for switch, rows in records.items() for at, kind, _, _ in rows
            if kind == "OFPT_GROUP_MOD" and start <= at < until]
    if not mods:
        return {"group_mods": 0}
    first, last = min(at for at, _ in mods), max(at for at, _ in mods)
    return {"group_mods": len(mods), "switches": len({switch for _, switch in mods}),
            "to_first_group_mod_ms": round((first - start) * 1000, 1),
            "to_last_group_mod_ms": round((last - start) * 1000, 1),
            "first_to_last_ms": round((last - first) * 1000, 1)}


def _failovers(testbed: Testbed, repeats: int) -> dict[str, Any]:
    node_dpid = {str(node): data["dpid"] for node, data in testbed.graph.nodes(data=True)}

    def switch(node: str) -> str:
        return f"{testbed.switch_prefix}{node_dpid[node]}"

    def host(node: str) -> str:
        return next(spec.name for spec in testbed.topo.host_specs
                    if spec.dpid == node_dpid[node])

    links = busiest_links(testbed, repeats)
    snoop = Snoop(sorted(testbed.bridges))
    events = []
    try:
        for i in range(repeats):
            u, v, src, dst = links[i % len(links)]
            ping = testbed.ping(host(src), host(dst), count=400, interval_s=0.01)
            time.sleep(1.0)
            down_at = time.time()
            testbed.net.configLinkStatus(switch(u), switch(v), "down")
            time.sleep(3.0)
            up_at = time.time()
            testbed.net.configLinkStatus(switch(u), switch(v), "up")
            pinged = ping.result()
            time.sleep(4.0)  # LLDP sees the link again, the fallback uses it again
            events.append({"link": [u, v], "od": [src, dst], "down_at": down_at,
                           "up_at": up_at, "ping_lost": len(pinged.lost),
                           "outage_ms": round(pinged.outage_ms, 1),
                           "longest_gap_ms": round(pinged.longest_gap_ms, 1)})
    finally:
        records = snoop.stop()
    for event in events:
        event["link_down"] = _event(records, event["down_at"], event["up_at"])
        event["link_up"] = _event(records, event["up_at"], event["up_at"] + 4.0)
        del event["down_at"], event["up_at"]

    def collect(kind: str, field: str) -> list[float]:
        return [e[kind][field] for e in events if e[kind] and field in e[kind]]

    return {
        "decision_to_groups_ms": {
            "port_status_to_first_group_mod": _summary(collect("link_down",
                                                               "to_first_group_mod_ms")),
            "port_status_to_last_group_mod": _summary(collect("link_down",
                                                              "to_last_group_mod_ms")),
            "first_to_last_group_mod": _summary(collect("link_down", "first_to_last_ms")),
            "group_mods_per_decision": _summary(collect("link_down", "group_mods"), 0)},
        "link_up_to_last_group_mod_ms": _summary(collect("link_up", "to_last_group_mod_ms")),
        "outage_ms": _summary([e["outage_ms"] for e in events]),
        "outage_longest_gap_ms": _summary([e["longest_gap_ms"] for e in events]),
        "events": events}


def _stats_latency(records) -> dict[str, Any]:
    """Per switch: statistics request -> reply (ms), from the snoop records."""
    latency: dict[str, list[float]] = defaultdict(list)
    for rows in records.values():
        asked = {}
        for at, kind, direction, xid in rows:
            if kind in ("OFPST_PORT", "OFPST_FLOW") and direction == "request":
                asked[xid] = (kind, at)
            elif direction == "reply" and xid in asked:
                kind, since = asked.pop(xid)
                latency[kind].append((at - since) * 1000)
    return {kind: _summary(values) for kind, values in latency.items()}


def _polling(testbed: Testbed, window_s: float) -> dict[str, Any]:
    switches = len(testbed.bridges)
    snoop = Snoop(sorted(testbed.bridges))
    try:
        before = _cpu_seconds(testbed.controller.pid)
        time.sleep(window_s)
        polled = _cpu_seconds(testbed.controller.pid) - before
    finally:
        records = snoop.stop()
    poll_s = testbed.poll_interval_s
    testbed.poll_interval_s = 3600.0
    testbed.restart_controller()
    wait_ready(testbed, timeout_s=300)
    settled_groups(testbed, timeout_s=300)  # reconciliation done
    before = _cpu_seconds(testbed.controller.pid)
    time.sleep(window_s)
    idle = _cpu_seconds(testbed.controller.pid) - before
    polls = window_s / poll_s
    return {"poll_s": poll_s, "window_s": window_s,
            "controller_cpu_s_polling": round(polled, 3),
            "controller_cpu_s_not_polling": round(idle, 3),
            "cpu_ms_per_switch_per_poll": round((polled - idle) / polls / switches * 1000, 3),
            "controller_cpu_pct_per_switch": round((polled - idle) / window_s / switches * 100,
                                                   3),
            "switch_reply_ms": _stats_latency(records),
            "note": "the poll round also closes the interval and makes the fallback decision"}


def wait_ready(testbed: Testbed, timeout_s: float) -> None:
    switches, links = len(testbed.bridges), testbed.graph.number_of_edges()

    def ready():
        try:
            status = testbed.api.status()
        except ApiError:  # a busy controller answers late: ask again
            return False
        return status["switches"] == switches and status["links"] == links

    testbed.wait_for(ready, timeout_s=timeout_s, interval_s=1.0)


def settled_groups(testbed: Testbed, timeout_s: float) -> None:
    """Wait until every switch's groups stop changing (the first decision is installed)."""
    last = None
    edge = sum(1 for _, data in testbed.graph.nodes(data=True) if data.get("hosts", True))

    def stable():
        nonlocal last
        now = {s: testbed.dump_groups(s) for s in sorted(testbed.bridges)}
        ingress = sum(1 for groups in now.values()  # local repair's groups are everywhere
                      if any(group.type == "select" for group in groups.values()))
        same = now == last and ingress == edge
        last = now
        return same

    testbed.wait_for(stable, timeout_s=timeout_s, interval_s=2.0)


def run_case(spec: str, scale: float, repeats: int, window_s: float,
             ready_timeout_s: float) -> dict[str, Any]:
    result: dict[str, Any] = {"topology": spec, "scale": scale}
    started = time.monotonic()
    with Testbed(spec, scale=scale, connect_timeout_s=ready_timeout_s) as testbed:
        result["network_start_s"] = round(time.monotonic() - started, 1)
        try:
            wait_ready(testbed, timeout_s=ready_timeout_s)
            settled_groups(testbed, timeout_s=ready_timeout_s)
        except TimeoutError as error:
            log = testbed.controller_log.read_text(errors="replace")
            result["failed"] = (
                f"the controller did not take the network over in {ready_timeout_s:g} s "
                f"({error}); its log meanwhile: {log.count(' discovered')} link discoveries, "
                f"{log.count(' timed out')} link timeouts, {log.count('reconciling')} switch "
                f"take-overs, {log.count(' disconnected')} switch disconnections")
            return result
        result["controller_ready_s"] = round(time.monotonic() - started, 1)
        result["switches"], result["links"] = len(testbed.bridges), testbed.graph.number_of_edges()
        result["hosts"] = len(testbed.net.hosts)
        result["paths"] = sum(len(od["paths"]) for od in testbed.api.paths()["od_pairs"])
        learned = time.monotonic()
        result["first_pingall_loss_pct"] = testbed.net.pingAll(timeout=2)
        result["pingall_s"] = round(time.monotonic() - learned, 1)
        time.sleep(2 * testbed.poll_interval_s)
        for name, measure in [("state", lambda: _rules_and_groups(testbed)),
                              ("failover", lambda: _failovers(testbed, repeats)),
                              ("polling", lambda: _polling(testbed, window_s))]:
            try:
                result[name] = measure()
            except Exception as error:  # noqa: BLE001 (keep what the other parts measured)
                result[name] = {"failed": f"{type(error).__name__}: {error}"}
    result["total_s"] = round(time.monotonic() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topologies", default=DEFAULT_TOPOLOGIES,
                        help=f"comma-separated catalog specs (default {DEFAULT_TOPOLOGIES})")
    parser.add_argument("--scale", type=float, default=CAPACITY_SCALE,
                        help="capacity scale (Mbit/s in the file / scale = Mbit/s shaped)")
    parser.add_argument("--repeats", type=int, default=5, help="link failures per topology")
    parser.add_argument("--window", type=float, default=20.0,
                        help="seconds of CPU measurement, with and without polling")
    parser.add_argument("--ready-timeout", type=float, default=300.0,
                        help="seconds the controller gets to take a network over")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    results = {}
    for spec in args.topologies.split(","):
        try:
            results[spec] = run_case(spec, args.scale, args.repeats, args.window,
                                     args.ready_timeout)
        except Exception as error:  # noqa: BLE001 (one topology that does not fit must not hide the others)
            results[spec] = {"failed": f"{type(error).__name__}: {error}"}
    emit({"benchmark": "controller", "results": results}, args.out)


if __name__ == "__main__":
    main()

"""Local repair: what it costs the switches in state, and what a link failure costs the
traffic with it and without it (today's pipeline), with the controller running and stopped.

    .venv/bin/python -m benchmarks.local_repair [--topology abilene] [--repeats 3]
        [--window 2] [--state-only] [--out benchmarks/results/local_repair.json]

- ``state`` (no root; abilene and geant): the pipeline's rules, SELECT and fast-failover groups
  and buckets per switch for the fallback's decision with every host known, with local repair
  and without; the detour tunnels it adds beyond the path set.
- ``outage`` (root, Open vSwitch; ``--topology``): one Mininet network with local repair and
  one without (``--no-local-repair``). For each of ``--repeats`` links (those the fallback
  uses most, never a bridge; ``benchmarks.controller.busiest_links``) and both controller
  states: a ping every 10 ms and a UDP stream of 1,000 datagrams a second between two hosts
  whose fallback route crosses the link (ARP entries pinned), the link taken down on both
  veth ends (``configLinkStatus``), for ``--window`` seconds, with the controller running or
  frozen (SIGSTOP from just before the failure to the end of the window, then SIGCONT).
  Loss duration = lost datagrams / rate (1 ms resolution) and lost pings x 10 ms; also the
  longest silence between two echo replies. With the controller stopped,
  ``decision_after_resume_ms``: from SIGCONT until the controller's view has the link down
  (``/te/v1/topology``; it installs its new decision in the same call, polled every 50 ms).
  The link comes back up after each failure.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from agents.baselines import fallback_policy
from benchmarks.common import emit
from benchmarks.controller import busiest_links, settled_groups, wait_ready
from controller import pipeline
from controller.pipeline import Fabric, Host
from lab.testbed import Testbed
from sim.paths import PathSet
from topologies.catalog import load_topology
from topologies.mininet import host_plan, link_plan

PING_INTERVAL_S = 0.01
UDP_PAYLOAD = 100
UDP_MBPS = 0.8  # 1,000 datagrams a second


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


# -- state (the pipeline, no switch) ---------------------------------------------------------
def fabric_of(spec: str, local_repair: bool) -> Fabric:
    """The fabric the controller builds for a catalog network in Mininet, every host known."""
    graph = load_topology(spec)
    link_ports = {}
    for link in link_plan(graph, scale=1000.0):
        u, v = link.edge
        link_ports[u, v], link_ports[v, u] = (link.port1, link.port2), (link.port2, link.port1)
    hosts = {h.mac: Host(h.mac, h.ip.split("/")[0], h.dpid, h.port) for h in host_plan(graph)}
    dpid_of = {node: data["dpid"] for node, data in graph.nodes(data=True)}
    return Fabric(PathSet.from_graph(graph, k=4), dpid_of, link_ports, hosts, local_repair)


def state(spec: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, repair in (("local_repair", True), ("today", False)):
        fabric = fabric_of(spec, repair)
        plan = pipeline.local_repair(fabric)
        decision = fallback_policy(fabric.path_set).decision()
        labels = pipeline.label_flows_by_switch(fabric, plan)
        groups = pipeline.groups_by_switch(fabric, decision, plan)
        rules = [len(pipeline.desired_flows(fabric, dpid, labels)) for dpid in fabric.node_of]
        kinds = {kind: [sum(1 for g in groups[dpid].values() if g.kind == kind)
                        for dpid in fabric.node_of] for kind in (pipeline.SELECT,
                                                                 pipeline.FAILOVER)}
        buckets = [sum(len(g.buckets) for g in groups[dpid].values()) for dpid in fabric.node_of]
        result[name] = {
            "switches": len(rules), "paths": fabric.path_set.n_paths,
            "rules_per_switch": _summary(rules), "rules_total": sum(rules),
            "label_rules_total": sum(len(r) for r in labels.values()),
            "select_groups_total": sum(kinds[pipeline.SELECT]),
            "failover_groups_per_switch": _summary(kinds[pipeline.FAILOVER]),
            "failover_groups_total": sum(kinds[pipeline.FAILOVER]),
            "buckets_per_switch": _summary(buckets), "buckets_total": sum(buckets),
            "detour_tunnels": len(plan.tunnels),
            "detour_tunnel_rules": sum(len(t) - 1 for t in plan.tunnels)}
    return result


# -- outage (Mininet) ------------------------------------------------------------------------
def _seen_down(testbed: Testbed, u: str, v: str) -> bool:
    """The controller's view has the link down (its decision moved off it in the same call)."""
    links = testbed.api.topology()["graph_links"]
    return any(not link["up"] for link in links if {link["src"], link["dst"]} == {u, v})


def _fail_once(testbed: Testbed, link: tuple[str, str, str, str], stop: bool,
               window_s: float) -> dict[str, Any]:
    u, v, src, dst = link
    dpid = {str(node): data["dpid"] for node, data in testbed.graph.nodes(data=True)}
    switch = {n: f"{testbed.switch_prefix}{dpid[n]}" for n in (u, v)}
    host = {n: next(spec.name for spec in testbed.topo.host_specs if spec.dpid == dpid[n])
            for n in (src, dst)}
    testbed.pin_arp(host[src], host[dst])
    seconds = 1.0 + 0.2 + window_s + 1.0
    ping = testbed.ping(host[src], host[dst], count=int(seconds / PING_INTERVAL_S),
                        interval_s=PING_INTERVAL_S)
    udp = testbed.iperf3(host[src], host[dst], seconds=seconds, udp_mbps=UDP_MBPS,
                         length=UDP_PAYLOAD)
    time.sleep(1.0)
    if stop:
        testbed.pause_controller()
    try:
        time.sleep(0.2)
        testbed.net.configLinkStatus(switch[u], switch[v], "down")
        time.sleep(window_s)
    finally:
        testbed.resume_controller()
    resumed = time.monotonic()
    event: dict[str, Any] = {"link": [u, v], "od": [src, dst],
                             "controller": "stopped" if stop else "running"}
    try:
        testbed.wait_for(lambda: _seen_down(testbed, u, v), timeout_s=30, interval_s=0.05)
        if stop:
            event["decision_after_resume_ms"] = round((time.monotonic() - resumed) * 1000, 1)
    except TimeoutError:
        event["decision_after_resume_ms"] = None
    pinged, streamed = ping.result(), udp.result()
    lost = streamed["end"]["sum"]["lost_packets"]
    rate = UDP_MBPS * 1e6 / 8 / UDP_PAYLOAD
    event.update({"udp_lost": lost, "udp_outage_ms": round(lost / rate * 1000, 1),
                  "ping_lost": len(pinged.lost), "ping_outage_ms": round(pinged.outage_ms, 1),
                  "ping_longest_gap_ms": round(pinged.longest_gap_ms, 1)})
    testbed.net.configLinkStatus(switch[u], switch[v], "up")
    testbed.wait_for(lambda: testbed.api.status()["links"]
                     == testbed.graph.number_of_edges(), timeout_s=30, interval_s=0.2)
    time.sleep(2.0)  # the fallback uses the link again
    return event


def outage(spec: str, local_repair: bool, repeats: int, window_s: float) -> dict[str, Any]:
    args = () if local_repair else ("--no-local-repair",)
    prefix = ("lr", "lq") if local_repair else ("lt", "lu")
    with Testbed(spec, controller_args=args, switch_prefix=prefix[0],
                 host_prefix=prefix[1]) as testbed:
        wait_ready(testbed, timeout_s=300)
        settled_groups(testbed, timeout_s=300)
        pingall_loss = testbed.net.pingAll(timeout=2)
        time.sleep(2 * testbed.poll_interval_s)
        links = busiest_links(testbed, repeats)
        events = [_fail_once(testbed, link, stop, window_s)
                  for link in links for stop in (False, True)]
    result: dict[str, Any] = {"first_pingall_loss_pct": pingall_loss}
    for controller in ("running", "stopped"):
        mine = [e for e in events if e["controller"] == controller]
        result[f"controller_{controller}"] = {
            "udp_outage_ms": _summary([e["udp_outage_ms"] for e in mine]),
            "ping_outage_ms": _summary([e["ping_outage_ms"] for e in mine]),
            "ping_longest_gap_ms": _summary([e["ping_longest_gap_ms"] for e in mine])}
    stopped = [e["decision_after_resume_ms"] for e in events
               if e["controller"] == "stopped" and e.get("decision_after_resume_ms") is not None]
    result["controller_stopped"]["decision_after_resume_ms"] = _summary(stopped)
    result["events"] = events
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default="abilene", help="network of the outage runs")
    parser.add_argument("--repeats", type=int, default=3, help="links failed per pipeline")
    parser.add_argument("--window", type=float, default=2.0,
                        help="seconds the link stays down (and the controller stopped)")
    parser.add_argument("--state-only", action="store_true", help="no Mininet, state only")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "local_repair",
                              "state": {spec: state(spec) for spec in ("abilene", "geant")}}
    if not args.state_only:
        result["outage"] = {"topology": args.topology, "window_s": args.window}
        for name, repair in (("local_repair", True), ("today", False)):
            result["outage"][name] = outage(args.topology, repair, args.repeats, args.window)
    emit(result, args.out)


if __name__ == "__main__":
    main()

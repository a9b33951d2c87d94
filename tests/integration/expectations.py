"""What the switches should hold, computed in the test from the TE core alone.

Nothing here asks the controller: the path set and the fallback decision are rebuilt from the
topology (capacities divided by the testbed's scale, as the controller does), and the ports
come from the Mininet topology. Comparing this with what ``ovs-ofctl`` reads back from the
switches checks the whole chain (discovery, path ids, labels, weights, ports).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache

import networkx as nx
import pytest

from agents.baselines import fallback_policy
from controller.pipeline import WEIGHT_TOLERANCE
from lab.testbed import GroupEntry, Testbed
from sim.decision import Decision
from sim.paths import PathSet
from topologies.catalog import load_topology

LABEL_OFFSET = 16  # ARCHITECTURE.md: MPLS label = path id + 16 (labels 0-15 are reserved)
WEIGHT_SCALE = 1000  # bucket weight = round(decision weight * 1000)

Bucket = tuple[int, int, int]  # (MPLS label, weight, output port)


@lru_cache(maxsize=8)
def scaled_graph(spec: str, scale: float) -> nx.DiGraph:
    """The topology with capacities divided by ``scale`` (shared: do not modify it)."""
    graph = load_topology(spec).copy()
    for _, _, data in graph.edges(data=True):
        data["capacity_mbps"] = data["capacity_mbps"] / scale
    return graph


def controller_graph(testbed: Testbed) -> nx.DiGraph:
    """The network as the controller's topology file describes it, capacities scaled."""
    return scaled_graph(testbed.controller_topology or testbed.topology, testbed.scale)


def path_set(testbed: Testbed) -> PathSet:
    return PathSet.from_graph(controller_graph(testbed), k=4, method="hops")


def both_ways(*links: tuple[str, str]) -> set[tuple[str, str]]:
    return {(u, v) for link in links for u, v in (link, link[::-1])}


def fallback(paths: PathSet, down_links: Iterable[tuple[str, str]] = ()) -> Decision:
    """The fallback the controller must install: invcap, ECMP ties, live links only."""
    return fallback_policy(paths).decision(down_links)


def switch_of(testbed: Testbed, node: str) -> str:
    """The bridge of a node of the controller's topology (same dpid on both sides)."""
    return f"{testbed.switch_prefix}{controller_graph(testbed).nodes[node]['dpid']}"


def host_of(testbed: Testbed, node: str) -> str:
    """The (first) Mininet host behind a node of the controller's topology."""
    dpid = controller_graph(testbed).nodes[node]["dpid"]
    return next(spec.name for spec in testbed.topo.host_specs if spec.dpid == dpid)


def expected_groups(testbed: Testbed, paths: PathSet,
                    decision: Decision) -> dict[str, dict[int, list[Bucket]]]:
    """``{switch: {group id: sorted buckets}}``: one SELECT group per OD pair at its source,
    group id = the destination's dpid, one bucket per path whose links all exist in the
    emulated network (a path over a link the network lacks cannot be labelled)."""
    graph = controller_graph(testbed)
    port_of = testbed.topo.port_of
    groups: dict[str, dict[int, list[Bucket]]] = {}
    for od, (src, dst) in enumerate(paths.od_pairs):
        switch = switch_of(testbed, src)
        buckets = []
        for path_id in paths.paths_of(od):
            hops = [(switch_of(testbed, u), switch_of(testbed, v))
                    for u, v in paths.links_of(path_id)]
            if any(hop not in port_of for hop in hops):
                continue
            weight = round(float(decision.weights[path_id]) * WEIGHT_SCALE)
            buckets.append((path_id + LABEL_OFFSET, weight, port_of[hops[0]]))
        groups.setdefault(switch, {})[graph.nodes[dst]["dpid"]] = sorted(buckets)
    for node in graph.nodes:
        groups.setdefault(switch_of(testbed, node), {})
    return groups


def installed_groups(testbed: Testbed,
                     switches: Iterable[str] | None = None) -> dict[str, dict[int, list[Bucket]]]:
    """The same shape, read back from the switches with ``ovs-ofctl dump-groups``."""
    return {switch: select_buckets(testbed.dump_groups(switch))
            for switch in sorted(switches if switches is not None else testbed.bridges)}


def select_buckets(groups: dict[int, GroupEntry]) -> dict[int, list[Bucket]]:
    """The SELECT groups of one switch's dump, sorted buckets (a bucket that continues in a
    failover group has that group's first port). The others must be local repair's
    fast-failover groups, whose every bucket watches the port it outputs on."""
    failover = [group for group in groups.values() if group.type != "select"]
    assert all(group.type == "ff" for group in failover), failover
    assert all(watch == port for group in failover
               for watch, (_, _, port) in zip(group.watched, group.buckets)), failover
    return {gid: sorted(group.buckets) for gid, group in groups.items() if group.type == "select"}


def group_differences(expected: dict, installed: dict,
                      tolerance: int = WEIGHT_TOLERANCE) -> list[str]:
    """Human-readable differences, empty when the switches hold what is expected: the same
    buckets, weights within ``tolerance`` thousandths (the controller leaves a group alone for
    smaller moves, :data:`controller.pipeline.WEIGHT_TOLERANCE`), the same ones zero."""
    def same(want: list[Bucket] | None, have: list[Bucket] | None) -> bool:
        if want is None or have is None or len(want) != len(have):
            return want == have
        return all((a[0], a[2]) == (b[0], b[2]) and abs(a[1] - b[1]) <= tolerance
                   and (a[1] == 0) == (b[1] == 0) for a, b in zip(want, have))

    problems = []
    for switch in sorted(set(expected) | set(installed)):
        want, have = expected.get(switch, {}), installed.get(switch, {})
        for gid in sorted(set(want) | set(have)):
            if not same(want.get(gid), have.get(gid)):
                problems.append(f"{switch} group {gid}: expected {want.get(gid)}, "
                                f"installed {have.get(gid)}")
    return problems


def weighted_paths(paths: PathSet, decision: Decision, src: str, dst: str) -> list[int]:
    """Path ids of OD pair (src, dst) that carry weight."""
    return [p for p in paths.paths_of((src, dst)) if decision.weights[p] > 0]


def bottleneck_mbps(paths: PathSet, path_id: int) -> float:
    return float(min(paths.capacities[paths.link_index(u, v)]
                     for u, v in paths.links_of(path_id)))


def single_path_pairs(paths: PathSet, decision: Decision) -> list[tuple[str, str, int]]:
    """(src, dst, path id) of every OD pair the decision puts on exactly one path."""
    pairs = []
    for src, dst in paths.od_pairs:
        weighted = weighted_paths(paths, decision, src, dst)
        if len(weighted) == 1:
            pairs.append((src, dst, weighted[0]))
    return pairs


def victim(paths: PathSet, decision: Decision,
           first_hop: bool = False) -> tuple[str, str, int, tuple[str, str]]:
    """(src, dst, path id, link) to fail: a single-path OD pair of the decision and the
    middle link of its path (seen by transit switches only; the ingress must be told, or a
    switch next to the link repair it) or, with ``first_hop``, its first link; the longest
    such path, such that the pair and its reverse still have a path once the link is down."""
    candidates = []
    for src, dst, path_id in single_path_pairs(paths, decision):
        links = paths.links_of(path_id)
        if len(links) < 3:
            continue
        link = links[0] if first_hop else links[len(links) // 2]
        live = paths.live_paths(both_ways(link))
        if not (any(live[p] for p in paths.paths_of((src, dst)))
                and any(live[p] for p in paths.paths_of((dst, src)))):
            continue
        candidates.append((len(links), src, dst, path_id, link))
    assert candidates, "no single path of three hops or more in this topology"
    _, src, dst, path_id, link = max(candidates)
    return src, dst, path_id, link


def wait_until_ready(testbed: Testbed, timeout_s: float = 60.0) -> dict:
    """Every switch connected, every link of the network discovered, and every switch
    holding its groups (the controller has taken it over): returns the status."""
    switches, links = len(testbed.bridges), testbed.graph.number_of_edges()

    def ready():
        status = testbed.api.status()
        if status["switches"] != switches or status["links"] != links:
            return None
        prefix = testbed.switch_prefix
        expected = {f"{prefix}{data['dpid']}": 0 for _, data in testbed.graph.nodes(data=True)}
        for src in testbed.graph.nodes:
            if testbed.graph.nodes[src].get("hosts", True):
                expected[f"{prefix}{testbed.graph.nodes[src]['dpid']}"] = sum(
                    1 for dst in testbed.graph.nodes
                    if dst != src and testbed.graph.nodes[dst].get("hosts", True))
        for switch, count in expected.items():
            if len(select_buckets(testbed.dump_groups(switch))) != count:
                return None
        return status

    return testbed.wait_for(ready, timeout_s=timeout_s)


def wait_for_groups(network: Testbed, expected, timeout_s: float, interval_s: float = 0.1,
                    failure: str = "groups do not match the decision") -> float:
    """Wait until the switches hold ``expected``; returns the seconds it took, or fails."""
    started = time.monotonic()
    problems = []

    def match():
        nonlocal problems
        problems = group_differences(expected, installed_groups(network))
        return not problems

    try:
        network.wait_for(match, timeout_s=timeout_s, interval_s=interval_s)
    except TimeoutError:
        pytest.fail(f"{failure}:\n" + "\n".join(problems[:20]))
    return time.monotonic() - started

"""The forwarding pipeline without a switch: rules and groups are walked like a packet would.

The pipeline's rule and group specs go to fake switches as OpenFlow messages (so the messages
are checked to say what the specs say); the walker (``fake_switch.walk``) applies them,
highest priority first, to a packet entering from a host, follows every bucket of every group
and every link to the next switch, and records where the packet ends: so each installed path
is checked to be loop-free, to follow its path id, and to end at the right host.
"""
from __future__ import annotations

import dataclasses
import itertools

import fake_switch
import networkx as nx
import numpy as np
import pytest
from fake_switch import FakeSwitch
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser
from os_ken.ofproto.ofproto_protocol import ProtocolDesc

from agents.baselines import shortest_path_decision
from controller import openflow, pipeline
from controller.pipeline import Fabric, Host
from sim.decision import Decision
from sim.paths import PathSet
from topologies.catalog import load_topology
from topologies.mininet import host_plan, link_plan


def make_fabric(spec: str, known_links=None, k: int = 3) -> Fabric:
    graph = load_topology(spec)
    path_set = PathSet.from_graph(graph, k=k)
    dpid_of = {node: data["dpid"] for node, data in graph.nodes(data=True)}
    link_ports = {}
    for link in link_plan(graph, scale=1000.0):
        u, v = link.edge
        link_ports[u, v], link_ports[v, u] = (link.port1, link.port2), (link.port2, link.port1)
    if known_links is not None:
        link_ports = {edge: ports for edge, ports in link_ports.items() if edge in known_links}
    hosts = {spec.mac: Host(spec.mac, spec.ip.split("/")[0], spec.dpid, spec.port)
             for spec in host_plan(graph)}
    return Fabric(path_set, dpid_of, link_ports, hosts)


def select_groups(groups: dict[int, pipeline.Group]) -> dict[int, pipeline.Group]:
    return {gid: group for gid, group in groups.items() if group.kind == pipeline.SELECT}


def install(fabric: Fabric, decision: Decision) -> dict[int, FakeSwitch]:
    """Fake switches given the pipeline's rules and groups as OpenFlow messages, in the order
    the controller sends them (groups first: rules and buckets refer to them)."""
    labels = pipeline.label_flows_by_switch(fabric)
    groups = pipeline.groups_by_switch(fabric, decision)
    switches = {dpid: FakeSwitch(dpid) for dpid in fabric.node_of}
    for dpid, switch in switches.items():
        for group in groups[dpid].values():
            switch.apply(openflow.group_add(group))
        for rule in pipeline.desired_flows(fabric, dpid, labels).values():
            switch.apply(openflow.flow_mod(rule, cookie=1))
        assert not switch.errors
        assert switch.rules() == pipeline.desired_flows(fabric, dpid, labels)  # round trip
        assert switch.group_table() == groups[dpid]
    return switches


def walk(fabric: Fabric, switches: dict[int, FakeSwitch], src: Host, dst: Host,
         cut: frozenset = frozenset()) -> list[tuple]:
    """Every way a packet from ``src`` to ``dst`` can go (see ``fake_switch.walk``) while the
    links in ``cut`` (node pairs, both directions) are down."""
    neighbour = {(fabric.dpid_of[u], ports[0]): (fabric.dpid_of[v], ports[1])
                 for (u, v), ports in fabric.link_ports.items() if frozenset((u, v)) not in cut}
    hosts_at = {(host.dpid, host.port): host.mac for host in fabric.hosts.values()}
    return fake_switch.walk(switches, neighbour, hosts_at, src, dst)


@pytest.mark.parametrize("spec", ["abilene", "fat-tree:k=4", "ring:n=5"])
def test_every_bucket_of_every_group_delivers_along_its_path(spec):
    fabric = make_fabric(spec)
    path_set = fabric.path_set
    decision = Decision.uniform(path_set, candidates_only=False)  # every path carries weight
    switches = install(fabric, decision)
    hosts = list(fabric.hosts.values())
    used_labels = set()
    for src in hosts:
        for dst in hosts:
            if src == dst:
                continue
            outcomes = walk(fabric, switches, src, dst)
            assert outcomes and all(end == dst.mac for _, _, end in outcomes), outcomes
            if src.dpid == dst.dpid:
                continue
            od = path_set.od_index(fabric.node_of[src.dpid], fabric.node_of[dst.dpid])
            assert sorted(labels[0] for labels, _, _ in outcomes) == sorted(
                pipeline.label_of(p) for p in path_set.paths_of(od))
            for labels, visited, _ in outcomes:
                nodes = [fabric.node_of[dpid] for dpid in visited]
                assert len(set(nodes)) == len(nodes), "loop"
                assert tuple(nodes) == path_set.paths[pipeline.path_of_label(labels[0])]
                used_labels.add(labels[0])
    assert len(used_labels) == path_set.n_paths


def test_bucket_weights_are_the_decision():
    fabric = make_fabric("abilene")
    path_set = fabric.path_set
    decision = shortest_path_decision(path_set, "invcap", ecmp_ties=True)
    for dpid, node in fabric.node_of.items():
        groups = select_groups(pipeline.desired_groups(fabric, dpid, decision))
        assert sorted(groups) == sorted(fabric.dpid_of[d] for s, d in path_set.od_pairs if s == node)
        for group in groups.values():
            od = path_set.od_index(node, fabric.node_of[group.group_id])
            expected = {pipeline.label_of(p): round(decision.weights[p] * 1000)
                        for p in path_set.paths_of(od)}
            assert {b.label: b.weight for b in group.buckets} == expected
            assert sum(b.weight for b in group.buckets) in (999, 1000)


def test_paths_over_links_with_unknown_ports_are_not_installed():
    full = make_fabric("ring:n=4")
    missing = next(iter(full.link_ports))
    fabric = make_fabric("ring:n=4", known_links=set(full.link_ports) - {missing})
    installable = fabric.installable()
    uses_missing = np.array([missing in fabric.path_set.links_of(p)
                             for p in range(fabric.path_set.n_paths)])
    assert not installable[uses_missing].any() and installable[~uses_missing].all()
    decision = Decision.uniform(fabric.path_set, candidates_only=False)
    labels = {dict(rule.match)["mpls_label"]
              for dpid in fabric.node_of for rule in pipeline.label_flows(fabric, dpid)}
    buckets = {bucket.label for dpid in fabric.node_of
               for group in pipeline.desired_groups(fabric, dpid, decision).values()
               for bucket in group.buckets}
    dead = {pipeline.label_of(p) for p in np.flatnonzero(uses_missing)}
    assert dead and not dead & labels and not dead & buckets


def test_a_link_down_moves_weight_off_its_paths():
    fabric = make_fabric("abilene")
    path_set = fabric.path_set
    down = {("ATLAng", "HSTNng"), ("HSTNng", "ATLAng")}
    decision = shortest_path_decision(path_set, "invcap", ecmp_ties=True, down_links=down)
    dead_labels = {pipeline.label_of(p) for p in np.flatnonzero(~path_set.live_paths(down))}
    for dpid in fabric.node_of:
        for group in select_groups(pipeline.desired_groups(fabric, dpid, decision)).values():
            assert all(b.weight == 0 for b in group.buckets if b.label in dead_labels)
            assert sum(b.weight for b in group.buckets) >= 999


def test_messages_carry_the_cookie_and_the_specs():
    fabric = make_fabric("linear:n=3")
    decision = Decision.uniform(fabric.path_set, candidates_only=False)
    cookie = 0x5259555445
    switch = ProtocolDesc(ofproto_v1_3.OFP_VERSION)  # what serialization needs of a datapath
    for rule in pipeline.desired_flows(fabric, 1).values():
        message = openflow.flow_mod(rule, cookie)
        assert message.cookie == cookie and message.table_id == rule.table
        assert sorted(message.match.items()) == list(rule.match)
        message.datapath = switch
        message.serialize()  # a well-formed OpenFlow 1.3 message
    for group in pipeline.desired_groups(fabric, 1, decision).values():
        message = openflow.group_add(group)
        assert [b.weight for b in message.buckets] == [b.weight for b in group.buckets]
        message.datapath = switch
        message.serialize()
    delete = openflow.flow_delete(next(iter(pipeline.desired_flows(fabric, 1))), cookie)
    assert delete.cookie_mask == openflow.ALL_ONES_64


def test_groups_within_the_tolerance_are_the_same_but_zero_weights_always_count():
    def group(*weights):
        return pipeline.Group(7, tuple(pipeline.Bucket(w, 16 + i, 1 + i)
                                       for i, w in enumerate(weights)))

    tol = pipeline.WEIGHT_TOLERANCE
    assert group(500, 500).same_within(group(500 + tol, 500 - tol))
    assert not group(500, 500).same_within(group(501 + tol, 499 - tol))
    assert not group(1000, 0).same_within(group(999, 1))  # weight onto or off a path: always sent
    assert not group(500, 500).same_within(group(500, 500, 0))
    moved = pipeline.Group(7, (pipeline.Bucket(500, 16, 2), pipeline.Bucket(500, 17, 1)))
    assert not group(500, 500).same_within(moved)  # same weights, other ports


def _single_failures(fabric: Fabric, switches: dict[int, FakeSwitch]):
    """(cut link, src, dst, outcomes) of every pair whose traffic crosses the link, for every
    link whose loss leaves the network connected; the switches are never told of the cut."""
    graph = nx.Graph(list(fabric.link_ports))
    hosts = [(a, b) for a in fabric.hosts.values() for b in fabric.hosts.values()
             if a.dpid != b.dpid]
    crossing: dict[frozenset, list] = {}
    for src, dst in hosts:
        for _, visited, _ in walk(fabric, switches, src, dst):
            for u, v in itertools.pairwise(visited):
                crossing.setdefault(frozenset((u, v)), []).append((src, dst))
    bridges = {frozenset(bridge) for bridge in nx.bridges(graph)}
    for link in sorted({frozenset(edge) for edge in graph.edges} - bridges, key=sorted):
        dpids = frozenset(fabric.dpid_of[node] for node in link)
        for src, dst in dict.fromkeys(crossing.get(dpids, [])):
            yield link, src, dst, walk(fabric, switches, src, dst, frozenset({link}))


@pytest.mark.parametrize("spec, decide", [
    ("abilene", "fallback"), ("abilene", "uniform"), ("geant", "fallback"),
    ("fat-tree:k=4", "fallback")])
def test_the_switches_alone_repair_every_single_link_failure(spec, decide):
    """The groups of the healthy network stay installed (no controller): a packet meeting the
    cut link is moved onto a detour by the switch before it, and arrives (k=4 candidates, as
    the controller's default)."""
    fabric = make_fabric(spec, k=4)
    decision = (shortest_path_decision(fabric.path_set, "invcap", ecmp_ties=True)
                if decide == "fallback" else Decision.uniform(fabric.path_set))
    switches = install(fabric, decision)
    cases = 0
    for link, src, dst, outcomes in _single_failures(fabric, switches):
        cases += 1
        assert outcomes and all(end == dst.mac for _, _, end in outcomes), (link, outcomes)
    assert cases > 50


def test_without_local_repair_traffic_across_a_failed_link_is_lost_until_the_controller_acts():
    fabric = dataclasses.replace(make_fabric("abilene"), local_repair=False)
    decision = shortest_path_decision(fabric.path_set, "invcap", ecmp_ties=True)
    switches = install(fabric, decision)
    assert not any(group.kind == pipeline.FAILOVER for switch in switches.values()
                   for group in switch.groups.values())
    cases = list(_single_failures(fabric, switches))
    assert len(cases) > 50
    for link, _, _, outcomes in cases:  # the buckets that crossed the link now end there
        assert any(end.startswith("dead port") for _, _, end in outcomes), (link, outcomes)


def test_a_dead_first_hop_s_share_goes_to_the_live_weighted_buckets_of_the_ingress():
    fabric = make_fabric("abilene")
    path_set = fabric.path_set
    decision = Decision.uniform(path_set)  # the candidates of every OD pair carry weight
    switches = install(fabric, decision)
    src, dst = fabric.hosts["00:00:00:00:02:01"], fabric.hosts["00:00:00:00:0b:01"]
    s, d = fabric.node_of[src.dpid], fabric.node_of[dst.dpid]
    weighted = [p for p in path_set.paths_of((s, d)) if decision.weights[p] > 0]
    first_hops = {path_set.paths[p][1] for p in weighted}
    assert len(first_hops) >= 2
    dead = sorted(first_hops)[0]
    outcomes = walk(fabric, switches, src, dst, frozenset({frozenset((s, dead))}))
    assert all(end == dst.mac for _, _, end in outcomes)
    # The SELECT group chose among the live weighted buckets only: no detour at the ingress.
    assert sorted(labels[0] for labels, _, _ in outcomes) == sorted(
        pipeline.label_of(p) for p in weighted if path_set.paths[p][1] != dead)
    group = switches[src.dpid].groups[dst.dpid]
    assert all(bucket.watch == (bucket.weight > 0) for bucket in group.buckets)


def test_a_single_path_pair_is_not_watched_at_the_ingress_its_failover_group_detours():
    fabric = make_fabric("abilene")
    decision = shortest_path_decision(fabric.path_set, "invcap", ecmp_ties=True)
    groups = pipeline.groups_by_switch(fabric, decision)
    repair = pipeline.local_repair(fabric)
    failover_ids = {group.group_id for group in repair.groups.values()}
    assert not any(bucket.back for (_, came_from), group in repair.groups.items()
                   if came_from is None for bucket in group.buckets)
    bridges = {frozenset(link) for link in nx.bridges(nx.Graph(list(fabric.link_ports)))}
    for dpid, node in fabric.node_of.items():
        for gid, group in select_groups(groups[dpid]).items():
            weighted = [bucket for bucket in group.buckets if bucket.weight]
            if len({bucket.port for bucket in weighted}) == 1:
                assert not any(bucket.watch for bucket in group.buckets)
            assert all(bucket.group in failover_ids for bucket in group.buckets
                       if bucket.group is not None)
            assert all(bucket.group is not None for bucket in weighted
                       if frozenset(fabric.path_set.paths[bucket.label - 16][:2]) not in bridges)


@pytest.mark.parametrize("spec", ["abilene", "geant"])
def test_local_repair_adds_bounded_groups_and_few_rules(spec):
    fabric = make_fabric(spec)
    today = dataclasses.replace(fabric, local_repair=False)
    decision = shortest_path_decision(fabric.path_set, "invcap", ecmp_ties=True)
    repair = pipeline.local_repair(fabric)
    labels, labels_today = (sum(len(rules) for rules in pipeline.label_flows_by_switch(f).values())
                            for f in (fabric, today))
    tunnel_rules = sum(len(tunnel) - 1 for tunnel in repair.tunnels)
    assert labels == labels_today + tunnel_rules and tunnel_rules < labels_today / 10
    graph = load_topology(spec)
    for dpid, node in fabric.node_of.items():
        groups = pipeline.groups_by_switch(fabric, decision, repair)[dpid]
        failover = [g for g in groups.values() if g.kind == pipeline.FAILOVER]
        # at most 1 + DETOURS_PER_HOP per (next switch, destination) (one plain, one for each
        # detour back out of the in-port), of at most 1 + DETOURS_PER_HOP buckets
        assert len(failover) <= graph.out_degree(node) * (graph.number_of_nodes() - 1) * (
            1 + pipeline.DETOURS_PER_HOP)
        assert all(2 <= len(g.buckets) <= 1 + pipeline.DETOURS_PER_HOP for g in failover)
        # the SELECT groups are today's, buckets chained to failover groups or watched
        assert {gid: [(b.weight, b.label, b.port) for b in g.buckets]
                for gid, g in select_groups(groups).items()} == {
            gid: [(b.weight, b.label, b.port) for b in g.buckets]
            for gid, g in pipeline.groups_by_switch(today, decision)[dpid].items()}
    ids = [g.group_id for g in repair.groups.values()]
    assert len(set(ids)) == len(ids) and min(ids) >= pipeline.FAILOVER_GROUP_BASE


def test_a_detour_back_to_where_the_traffic_came_from_leaves_by_in_port():
    """Open vSwitch drops an output to the port a packet came in by ("skipping output to
    input port"): such a detour has its own group, whose bucket outputs to IN_PORT."""
    fabric = make_fabric("abilene", k=4)
    repair = pipeline.local_repair(fabric)
    back = {key: group for key, group in repair.groups.items()
            if any(bucket.back for bucket in group.buckets)}
    assert back
    for ((x, _, _), came_from), group in back.items():
        (bucket,) = [bucket for bucket in group.buckets if bucket.back]
        assert bucket.port == fabric.link_ports[x, came_from][0]
        message = openflow.group_add(group)
        outputs = [action.port for b in message.buckets for action in b.actions
                   if isinstance(action, ofproto_v1_3_parser.OFPActionOutput)]
        assert ofproto_v1_3.OFPP_IN_PORT in outputs and bucket.port not in outputs
    # the rules of labels arriving from that switch use it, the others the plain group
    labels = pipeline.label_flows_by_switch(fabric, repair)
    ids = {group.group_id for group in back.values()}
    used = {action[1] for rules in labels.values() for rule in rules
            for action in rule.actions if action[0] == "group"}
    assert ids <= used

"""The tunnel-based forwarding pipeline, as data: which rules and groups each switch should hold.

Plain functions over a :class:`Fabric` (the path set, datapath ids, the ports of each link and
the known hosts); nothing here talks to a switch, so the whole pipeline is unit-tested without
one. ``controller.openflow`` turns these specs into OpenFlow 1.3 messages.

Tables (ARCHITECTURE.md, "Forwarding"):

- table 0, classify: LLDP and ARP to the controller; an MPLS label ``path id + 16`` is either
  forwarded out of the path's next port (transit) or popped at the path's last switch, which
  then delivers (table 2); IPv4 from a host goes to table 1; anything else to the controller.
- table 1, ingress: one rule per known host. Towards a host on another switch the rule points
  at that OD pair's SELECT group, whose buckets push one path's label each and whose bucket
  weights *are* the TE decision; towards a local host it outputs directly. The byte counters
  of these rules are the measured OD matrix.
- table 2, deliver: at the host's switch, its MAC to its port.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.decision import Decision
from sim.paths import Link, PathSet

TABLE_CLASSIFY, TABLE_INGRESS, TABLE_DELIVER = 0, 1, 2
LABEL_OFFSET = 16
"""MPLS labels 0-15 are reserved; path id p travels as label p + 16."""
WEIGHT_SCALE = 1000
"""Bucket weights are integers: a decision's weights in thousandths."""
WEIGHT_TOLERANCE = 3
"""A group whose bucket weights all moved by at most this many thousandths (and none to or from
zero) is left as installed: a learned policy's weights jitter from one interval to the next, and
every group modification makes Open vSwitch re-hash the group's flows onto its buckets."""

PRIORITY_CONTROL = 60000
PRIORITY_ARP = 50000
PRIORITY_LABEL = 40000
PRIORITY_HOST = 30000
PRIORITY_IPV4 = 100
PRIORITY_MISS = 0

ETH_LLDP, ETH_ARP, ETH_IPV4, ETH_IPV6, ETH_MPLS = 0x88CC, 0x0806, 0x0800, 0x86DD, 0x8847

Action = tuple
"""("output", port) | ("controller",) | ("group", id) | ("goto", table) | ("pop_mpls", ethertype)
| ("push_label", label); an empty action list drops."""


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: tuple[tuple[str, Any], ...]
    actions: tuple[Action, ...] = ()

    @property
    def key(self) -> tuple:
        """What identifies a rule on a switch: adding a rule with the same key replaces it."""
        return self.table, self.priority, self.match


@dataclass(frozen=True)
class Bucket:
    weight: int
    label: int
    port: int


@dataclass(frozen=True)
class Group:
    group_id: int
    buckets: tuple[Bucket, ...]

    def same_within(self, other: Group, tolerance: int = WEIGHT_TOLERANCE) -> bool:
        """Same buckets (labels, ports), weights within ``tolerance``, the same ones zero."""
        return self.group_id == other.group_id and len(self.buckets) == len(other.buckets) and all(
            (a.label, a.port) == (b.label, b.port) and abs(a.weight - b.weight) <= tolerance
            and (a.weight == 0) == (b.weight == 0)
            for a, b in zip(self.buckets, other.buckets))


@dataclass(frozen=True)
class Host:
    mac: str
    ip: str
    dpid: int
    port: int


def flow(table: int, priority: int, actions: Iterable[Action] = (), **match: Any) -> Flow:
    return Flow(table, priority, tuple(sorted(match.items())), tuple(actions))


def label_of(path_id: int) -> int:
    return path_id + LABEL_OFFSET


def path_of_label(label: int) -> int:
    return label - LABEL_OFFSET


@dataclass(frozen=True)
class Fabric:
    """What the pipeline is computed from.

    ``link_ports[(u, v)] = (port at u, port at v)`` for every link whose ports are known
    (discovered once; kept while the link is down, so transit rules stay in place and a link
    that comes back is used again by a weight change only).
    """

    path_set: PathSet
    dpid_of: Mapping[Any, int]
    link_ports: Mapping[Link, tuple[int, int]]
    hosts: Mapping[str, Host] = field(default_factory=dict)

    @property
    def node_of(self) -> dict[int, Any]:
        return {dpid: node for node, dpid in self.dpid_of.items()}

    def installable(self) -> np.ndarray:
        """[P] bool: every link of the path has known ports, so its label can be forwarded."""
        known = np.array([edge in self.link_ports for edge in self.path_set.edges])
        incidence = self.path_set.incidence
        return np.asarray(incidence @ (~known).astype(np.int64)).ravel() == 0

    def host_switch_node(self, host: Host) -> Any | None:
        return self.node_of.get(host.dpid)


def base_flows() -> list[Flow]:
    """The rules every switch has, whatever the topology."""
    to_controller = (("controller",),)
    return [
        flow(TABLE_CLASSIFY, PRIORITY_CONTROL, to_controller, eth_type=ETH_LLDP),
        flow(TABLE_CLASSIFY, PRIORITY_ARP, to_controller, eth_type=ETH_ARP),
        flow(TABLE_CLASSIFY, PRIORITY_IPV4, (("goto", TABLE_INGRESS),), eth_type=ETH_IPV4),
        # IPv6 is not routed (yet): drop it quietly instead of sending every ND packet up.
        flow(TABLE_CLASSIFY, PRIORITY_IPV4, (), eth_type=ETH_IPV6),
        flow(TABLE_CLASSIFY, PRIORITY_MISS, to_controller),
        # Unknown destination: the controller learns of it (and looks for the host).
        flow(TABLE_INGRESS, PRIORITY_MISS, to_controller),
        flow(TABLE_DELIVER, PRIORITY_MISS, ()),
    ]


def label_flows_by_switch(fabric: Fabric) -> dict[int, list[Flow]]:
    """Transit and egress rules of every installable path, per switch, in one pass."""
    rules: dict[int, list[Flow]] = {dpid: [] for dpid in fabric.dpid_of.values()}
    for path_id in np.flatnonzero(fabric.installable()):
        path = fabric.path_set.paths[path_id]
        label = label_of(int(path_id))
        # The first switch pushes the label in its group; it never matches on it.
        for position, node in enumerate(path[1:], start=1):
            actions: tuple[tuple[str, int], ...]
            if position == len(path) - 1:
                actions = (("pop_mpls", ETH_IPV4), ("goto", TABLE_DELIVER))
            else:
                actions = (("output", fabric.link_ports[node, path[position + 1]][0]),)
            rules[fabric.dpid_of[node]].append(flow(
                TABLE_CLASSIFY, PRIORITY_LABEL, actions, eth_type=ETH_MPLS, mpls_label=label))
    return rules


def label_flows(fabric: Fabric, dpid: int) -> list[Flow]:
    """Transit and egress rules of every installable path through switch ``dpid``."""
    return label_flows_by_switch(fabric).get(dpid, [])


def host_flows(fabric: Fabric, dpid: int) -> list[Flow]:
    """Ingress rules towards every known host, and delivery rules for the local ones."""
    node = fabric.node_of.get(dpid)
    groups = {int(gid) for gid in group_ids(fabric, dpid)}
    rules = []
    for host in sorted(fabric.hosts.values(), key=lambda h: h.mac):
        if host.dpid == dpid:
            out = (("output", host.port),)
            rules.append(flow(TABLE_INGRESS, PRIORITY_HOST, out, eth_type=ETH_IPV4,
                              eth_dst=host.mac))
            rules.append(flow(TABLE_DELIVER, PRIORITY_HOST, out, eth_dst=host.mac))
        elif node is not None and host.dpid in groups:
            rules.append(flow(TABLE_INGRESS, PRIORITY_HOST, (("group", host.dpid),),
                              eth_type=ETH_IPV4, eth_dst=host.mac))
    return rules


def desired_flows(fabric: Fabric, dpid: int,
                  labels: dict[int, list[Flow]] | None = None) -> dict[tuple, Flow]:
    """Every rule switch ``dpid`` should hold (``labels``: precomputed label rules, by switch)."""
    labels = label_flows_by_switch(fabric) if labels is None else labels
    rules = base_flows() + labels.get(dpid, []) + host_flows(fabric, dpid)
    return {rule.key: rule for rule in rules}


def group_ids(fabric: Fabric, dpid: int) -> list[int]:
    """One group per OD pair leaving this switch; its id is the destination's datapath id."""
    node = fabric.node_of.get(dpid)
    return [fabric.dpid_of[dst] for src, dst in fabric.path_set.od_pairs if src == node]


def desired_groups(fabric: Fabric, dpid: int, decision: Decision) -> dict[int, Group]:
    """The SELECT group of every OD pair leaving ``dpid``, weighted by ``decision``."""
    return groups_by_switch(fabric, decision).get(dpid, {})


def groups_by_switch(fabric: Fabric, decision: Decision) -> dict[int, dict[int, Group]]:
    """The SELECT group of every OD pair, by ingress switch, weighted by ``decision``.

    Paths that cannot be installed (a link's ports unknown) get no bucket; an OD pair whose
    weight would be all on such paths keeps buckets with weight 0 (the group drops, as the
    network cannot carry that demand until its links are known).
    """
    path_set = fabric.path_set
    installable = fabric.installable()
    groups: dict[int, dict[int, Group]] = {dpid: {} for dpid in fabric.dpid_of.values()}
    for od, (src, dst) in enumerate(path_set.od_pairs):
        buckets = []
        for path_id in path_set.paths_of(od):
            if not installable[path_id]:
                continue
            path = path_set.paths[path_id]
            weight = int(round(float(decision.weights[path_id]) * WEIGHT_SCALE))
            buckets.append(Bucket(weight, label_of(path_id), fabric.link_ports[path[0], path[1]][0]))
        group_id = fabric.dpid_of[dst]
        groups[fabric.dpid_of[src]][group_id] = Group(group_id, tuple(buckets))
    return groups

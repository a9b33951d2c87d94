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

Local repair (``Fabric.local_repair``): wherever a label leaves a switch ``x`` towards ``d`` by
the link ``(x, y)`` and ``sim.detours`` finds a detour, the transit rule (and, at the ingress,
the SELECT bucket, after pushing the label) goes through a FAST_FAILOVER group of ``(x, y,
d)`` instead of the port: its first bucket outputs on ``(x, y)`` while that port is live, the
next ones re-label onto a detour's path and leave by its port. At the ingress, a SELECT bucket
also watches its port when another weighted bucket leaves by another port, so that the switch
spreads a dead bucket's share over the live ones in proportion to their weights. Both happen
in the switch, with no controller; the controller then installs a new decision as before.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.decision import Decision
from sim.detours import Hop, detours
from sim.paths import Link, Path, PathSet

TABLE_CLASSIFY, TABLE_INGRESS, TABLE_DELIVER = 0, 1, 2
LABEL_OFFSET = 16
"""MPLS labels 0-15 are reserved; path id p travels as label p + 16."""
FAILOVER_GROUP_BASE = 0x40000000
"""Failover group ids start here (SELECT group ids are datapath ids, far below)."""
DETOURS_PER_HOP = 2
"""Detour buckets per failover group (each leaving by another port)."""
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
| ("push_label", label) | ("set_label", label); an empty action list drops."""
SELECT, FAILOVER = "select", "failover"


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
    """SELECT: push ``label``, then continue in failover group ``group`` or output on ``port``
    (the port the tunnel leaves by, either way); ``watch``: live only while ``port`` is.
    FAILOVER: set ``label`` (None: keep it) and output on ``port`` (``back``: to the in-port,
    which is ``port``), live while it is."""

    weight: int
    label: int | None
    port: int
    watch: bool = False
    group: int | None = None
    back: bool = False


@dataclass(frozen=True)
class Group:
    group_id: int
    buckets: tuple[Bucket, ...]
    kind: str = SELECT

    def same_within(self, other: Group, tolerance: int = WEIGHT_TOLERANCE) -> bool:
        """Same buckets (all but weights), weights within ``tolerance``, the same ones zero."""
        return (self.group_id, self.kind, len(self.buckets)) == \
            (other.group_id, other.kind, len(other.buckets)) and all(
            (a.label, a.port, a.watch, a.group, a.back) == (b.label, b.port, b.watch, b.group,
                                                            b.back)
            and abs(a.weight - b.weight) <= tolerance and (a.weight == 0) == (b.weight == 0)
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
    local_repair: bool = True
    """Failover groups and watched buckets (see the module's docstring)."""

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


FailoverKey = tuple[Hop, Any]
"""(hop, came from): ``came from`` is the switch the traffic arrives from when one of the hop's
detours goes back to it (that bucket then outputs to the in-port), else None."""


@dataclass(frozen=True)
class Repair:
    """What local repair adds to the pipeline (:func:`local_repair`)."""

    groups: Mapping[FailoverKey, Group] = field(default_factory=dict)
    """The failover groups, held by the hop's first switch. OpenFlow never sends a packet out
    of the port it came in by (Open vSwitch drops it) unless told ``IN_PORT``, so a detour
    back towards where the traffic came from needs a group of its own."""
    tunnels: tuple[Path, ...] = ()
    """Detour tunnels beyond the path set: tunnel i travels as ``label_of(n_paths + i)``."""

    def group(self, hop: Hop, came_from: Any = None) -> Group | None:
        """The failover group for traffic of ``hop`` arriving from ``came_from`` (None: from
        a host), or None when the hop has no detour."""
        return self.groups.get((hop, came_from)) or self.groups.get((hop, None))


def _tunnels(fabric: Fabric, repair: Repair) -> list[tuple[int, Path]]:
    """(path id, nodes) of every installable path and detour tunnel."""
    n_paths = fabric.path_set.n_paths
    tunnels = [(int(path_id), fabric.path_set.paths[path_id])
               for path_id in np.flatnonzero(fabric.installable())]
    return tunnels + [(n_paths + i, tunnel) for i, tunnel in enumerate(repair.tunnels)]


def label_flows_by_switch(fabric: Fabric, repair: Repair | None = None) -> dict[int, list[Flow]]:
    """Transit and egress rules of every installable path and detour tunnel, per switch, in
    one pass (``repair``: precomputed :func:`local_repair`)."""
    repair = local_repair(fabric) if repair is None else repair
    rules: dict[int, list[Flow]] = {dpid: [] for dpid in fabric.dpid_of.values()}
    for path_id, path in _tunnels(fabric, repair):
        label = label_of(path_id)
        # The first switch pushes the label in its group; it never matches on it.
        for position, node in enumerate(path[1:], start=1):
            actions: tuple[Action, ...]
            if position == len(path) - 1:
                actions = (("pop_mpls", ETH_IPV4), ("goto", TABLE_DELIVER))
            else:
                hop = (node, path[position + 1], path[-1])
                group = repair.group(hop, path[position - 1])
                actions = ((("group", group.group_id),) if group is not None
                           else (("output", fabric.link_ports[node, hop[1]][0]),))
            rules[fabric.dpid_of[node]].append(flow(
                TABLE_CLASSIFY, PRIORITY_LABEL, actions, eth_type=ETH_MPLS, mpls_label=label))
    return rules


def failover_group_id(path_set: PathSet, hop: Hop, variant: int = 0) -> int:
    """Stable for a path set: from the positions of the link (x, y) and of d, and the variant
    (0, or 1 + the detour that goes back out of the in-port)."""
    x, y, d = hop
    slot = path_set.link_index(x, y) * path_set.n_nodes + path_set.node_index(d)
    return FAILOVER_GROUP_BASE + slot * (1 + DETOURS_PER_HOP) + variant


def local_repair(fabric: Fabric) -> Repair:
    """The FAST_FAILOVER groups of the hops (x, y, d) of installable paths that have a
    detour (:func:`sim.detours.detours` over the installable paths and the links with known
    ports), and the detour tunnels they need. The primary bucket keeps the label and outputs
    on (x, y); each detour bucket sets the label of its path and outputs on that path's port,
    or to the in-port in the group for traffic that comes from that port's switch. Only the
    groups some rule or SELECT bucket uses; nothing without ``fabric.local_repair``."""
    if not fabric.local_repair:
        return Repair()
    path_set = fabric.path_set
    found = detours(path_set, fabric.installable(), fabric.link_ports, DETOURS_PER_HOP)
    groups: dict[FailoverKey, Group] = {}
    for path_id, path in _tunnels(fabric, Repair(tunnels=found.tunnels)):
        # a detour tunnel is entered by a failover bucket: its first hop needs no group
        first = 0 if path_id < path_set.n_paths else 1
        for position in range(first, len(path) - 1):
            hop = (path[position], path[position + 1], path[-1])
            options = found.by_hop.get(hop)
            if options is None:
                continue
            came_from = path[position - 1] if position else None
            nexts = [option.next_hop for option in options]
            back = came_from if came_from in nexts else None
            if (hop, back) in groups:
                continue
            x, y, _ = hop
            buckets = (Bucket(0, None, fabric.link_ports[x, y][0]),) + tuple(
                Bucket(0, label_of(option.path_id), fabric.link_ports[x, option.next_hop][0],
                       back=option.next_hop == back) for option in options)
            variant = 0 if back is None else 1 + nexts.index(back)
            groups[hop, back] = Group(failover_group_id(path_set, hop, variant), buckets,
                                      FAILOVER)
    return Repair(groups, found.tunnels)


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
    """The groups ``dpid`` should hold: failover groups, then the SELECT group of every OD
    pair leaving it, weighted by ``decision``."""
    return groups_by_switch(fabric, decision).get(dpid, {})


def groups_by_switch(fabric: Fabric, decision: Decision,
                     repair: Repair | None = None) -> dict[int, dict[int, Group]]:
    """Every switch's groups: its failover groups first (the others refer to them), then the
    SELECT group of every OD pair it is the ingress of, weighted by ``decision``.

    Paths that cannot be installed (a link's ports unknown) get no bucket; an OD pair whose
    weight would be all on such paths keeps buckets with weight 0 (the group drops, as the
    network cannot carry that demand until its links are known).
    """
    repair = local_repair(fabric) if repair is None else repair
    path_set = fabric.path_set
    installable = fabric.installable()
    groups: dict[int, dict[int, Group]] = {dpid: {} for dpid in fabric.dpid_of.values()}
    for (hop, _), failover_group in repair.groups.items():
        groups[fabric.dpid_of[hop[0]]][failover_group.group_id] = failover_group
    for od, (src, dst) in enumerate(path_set.od_pairs):
        tunnels = []  # (path id, weight, first port, failover group)
        for path_id in path_set.paths_of(od):
            if not installable[path_id]:
                continue
            path = path_set.paths[path_id]
            weight = int(round(float(decision.weights[path_id]) * WEIGHT_SCALE))
            chained = repair.group((src, path[1], dst))
            tunnels.append((path_id, weight, fabric.link_ports[path[0], path[1]][0],
                            None if chained is None else chained.group_id))
        # A dead port's share goes to the live weighted buckets if there is one under any
        # single failure: weight on more than one port.
        weighted_ports = {port for _, weight, port, _ in tunnels if weight}
        buckets = tuple(
            Bucket(weight, label_of(path_id), port,
                   watch=fabric.local_repair and weight > 0 and bool(weighted_ports - {port}),
                   group=group_id)
            for path_id, weight, port, group_id in tunnels)
        group_id = fabric.dpid_of[dst]
        groups[fabric.dpid_of[src]][group_id] = Group(group_id, buckets)
    return groups

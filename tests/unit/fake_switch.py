"""Fake OpenFlow switches for unit tests, after Faucet's ``FakeOFTable``.

A :class:`FakeSwitch` applies the real OpenFlow 1.3 messages the controller returns (flow and
group modifications, packet-outs, requests) to its tables and answers requests the way Open
vSwitch does, including the errors OVS would send (a group added twice, a group modified that
does not exist, a rule towards a group that does not exist, a fast failover bucket that
watches nothing) and what it does to rules when a group they use is deleted (deletes them). A
:class:`FakeNetwork` wires switches of a catalog topology to a ``ControlPlane`` through the
same translations the app uses (``controller.openflow``), and :func:`walk` follows a packet
through the installed tables over every link: every live bucket of a SELECT group, the first
live bucket of a FAST_FAILOVER group, where a bucket is live as in Open vSwitch (a SELECT
bucket: weight above 0 and, if it watches a port, the port live; a failover bucket: its watched
port live; a port is live while its cable is not cut); as in Open vSwitch, an output to the
port the packet came in by is dropped, unless it is ``IN_PORT``. No root, no Open vSwitch, no
sockets.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import openflow, pipeline
from controller.config import ControllerConfig
from controller.pipeline import FAILOVER, SELECT, Bucket, Flow, Group, Host
from controller.plane import ControlPlane, Now
from topologies.catalog import load_topology
from topologies.mininet import host_plan, link_plan


def actions_of(instructions) -> tuple:
    """OpenFlow instructions back into the pipeline's action tuples."""
    actions: list[tuple] = []
    for instruction in instructions:
        if isinstance(instruction, parser.OFPInstructionGotoTable):
            actions.append(("goto", instruction.table_id))
            continue
        actions += _bucket_actions(instruction.actions)
    # The pipeline lists a goto last; OpenFlow keeps it as its own instruction.
    return tuple(sorted(actions, key=lambda action: action[0] == "goto"))


def _bucket_actions(os_ken_actions) -> list[tuple]:
    actions: list[tuple] = []
    for action in os_ken_actions:
        if isinstance(action, parser.OFPActionOutput):
            actions.append(("controller",) if action.port == ofp.OFPP_CONTROLLER
                           else ("in_port",) if action.port == ofp.OFPP_IN_PORT
                           else ("output", action.port))
        elif isinstance(action, parser.OFPActionGroup):
            actions.append(("group", action.group_id))
        elif isinstance(action, parser.OFPActionPopMpls):
            actions.append(("pop_mpls", action.ethertype))
        elif isinstance(action, parser.OFPActionPushMpls):
            actions.append(("push_label", None))
        elif isinstance(action, parser.OFPActionSetField) and action.key == "mpls_label":
            if actions and actions[-1] == ("push_label", None):
                actions[-1] = ("push_label", action.value)
            else:
                actions.append(("set_label", action.value))
        else:
            raise AssertionError(f"unexpected action {action}")
    return actions


@dataclass
class Installed:
    flow: Flow
    cookie: int
    instructions: list


@dataclass
class FakeSwitch:
    dpid: int
    ports: dict[int, str] = field(default_factory=dict)  # port -> MAC
    flows: dict[tuple, Installed] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    packets_out: list[tuple[int, bytes]] = field(default_factory=list)
    replies: deque = field(default_factory=deque)
    """What the switch sent back, as the app's event translations make of it: tuples whose
    first element names the ``ControlPlane`` method (see ``FakeNetwork.answer``)."""
    flow_mods: int = 0
    group_mods: int = 0

    # -- applying messages -------------------------------------------------------------------
    def apply(self, message: Any) -> None:
        handler = {
            parser.OFPFlowMod: self._flow_mod, parser.OFPGroupMod: self._group_mod,
            parser.OFPPacketOut: self._packet_out, parser.OFPBarrierRequest: self._barrier,
            parser.OFPFlowStatsRequest: self._flow_stats,
            parser.OFPGroupDescStatsRequest: self._group_desc,
            parser.OFPPortDescStatsRequest: self._port_desc,
            parser.OFPPortStatsRequest: self._port_stats,
        }[type(message)]
        handler(message)

    def _flow_mod(self, message) -> None:
        self.flow_mods += 1
        match = tuple(sorted(message.match.items()))
        key = (message.table_id, message.priority, match)
        if message.command == ofp.OFPFC_ADD:
            flow = Flow(message.table_id, message.priority, match,
                        actions_of(message.instructions))
            missing = [args[0] for kind, *args in flow.actions
                       if kind == "group" and args[0] not in self.groups]
            if missing:  # OVS refuses the rule: OFPBAC_BAD_OUT_GROUP
                self.errors.append(f"rule {key} uses unknown group {missing[0]}")
                return
            self.flows[key] = Installed(flow, message.cookie, list(message.instructions))
        elif message.command == ofp.OFPFC_DELETE_STRICT:
            rule = self.flows.get(key)
            if rule is not None and rule.cookie & message.cookie_mask == \
                    message.cookie & message.cookie_mask:
                del self.flows[key]
        else:
            raise AssertionError(f"unexpected flow command {message.command}")

    def _group_mod(self, message) -> None:
        self.group_mods += 1
        gid = message.group_id
        if message.command == ofp.OFPGC_DELETE:
            self.groups.pop(gid, None)
            # As OVS: the rules that use a deleted group go with it.
            for key in [key for key, rule in self.flows.items() if ("group", gid) in rule.flow.actions]:
                del self.flows[key]
            return
        kind = FAILOVER if message.type == ofp.OFPGT_FF else SELECT
        if kind == FAILOVER and any(bucket.watch_port == ofp.OFPP_ANY
                                    and bucket.watch_group == ofp.OFPG_ANY
                                    for bucket in message.buckets):
            self.errors.append(f"group {gid}: a fast failover bucket watches nothing")
            return
        group = Group(gid, tuple(self._bucket(bucket, kind) for bucket in message.buckets), kind)
        if message.command == ofp.OFPGC_ADD:
            if gid in self.groups:
                self.errors.append(f"group {gid} exists")
                return
            self.groups[gid] = group
        elif message.command == ofp.OFPGC_MODIFY:
            if gid not in self.groups:
                self.errors.append(f"unknown group {gid}")
                return
            self.groups[gid] = group

    def _bucket(self, bucket, kind: str) -> Bucket:
        """Back into the pipeline's bucket. A SELECT bucket that continues in a failover group
        names no port: it is the port that group's first bucket outputs on (OVS accepts a
        bucket towards a group that does not exist: then the port is None)."""
        actions = dict((a[0], a[1] if len(a) > 1 else None)
                       for a in _bucket_actions(bucket.actions))
        watch = bucket.watch_port != ofp.OFPP_ANY
        if kind == FAILOVER:
            back = "in_port" in actions
            return Bucket(bucket.weight, actions.get("set_label"),
                          bucket.watch_port if back else actions["output"], back=back)
        port = actions.get("output")
        if port is None:
            chained = self.groups.get(actions["group"])
            port = chained.buckets[0].port if chained is not None else None
        if watch:
            assert bucket.watch_port == port, (bucket.watch_port, port)
        return Bucket(bucket.weight, actions["push_label"], port, watch, actions.get("group"))

    def _packet_out(self, message) -> None:
        (action,) = message.actions
        self.packets_out.append((action.port, bytes(message.data)))

    def _barrier(self, message) -> None:
        self.replies.append(("barrier_reply", self.dpid, message.xid))

    def _flow_stats(self, message) -> None:
        mask = message.cookie_mask
        body = [parser.OFPFlowStats(
            table_id=rule.flow.table, duration_sec=1, duration_nsec=0,
            priority=rule.flow.priority, idle_timeout=0, hard_timeout=0, flags=0,
            cookie=rule.cookie, packet_count=0, byte_count=0,
            match=parser.OFPMatch(**dict(rule.flow.match)), instructions=rule.instructions)
            for rule in self.flows.values()
            if rule.cookie & mask == message.cookie & mask
            and message.table_id in (ofp.OFPTT_ALL, rule.flow.table)]
        entries = [openflow.flow_entry(stats) for stats in body]
        self.replies.append(("flow_stats", self.dpid, message.xid, entries, False))

    def _group_desc(self, message) -> None:
        self.replies.append(("group_desc", self.dpid, message.xid, sorted(self.groups), False))

    def _port_desc(self, message) -> None:
        ports = [openflow.Port(port, mac, True, 10.0) for port, mac in sorted(self.ports.items())]
        self.replies.append(("port_desc", self.dpid, ports))

    def _port_stats(self, message) -> None:
        self.replies.append(("port_stats", self.dpid, [(p, 0, 1.0) for p in self.ports], False))

    # -- reading the tables ------------------------------------------------------------------
    def lookup(self, table: int, packet: dict) -> Flow | None:
        """The highest-priority rule of ``table`` that matches ``packet``."""
        candidates = [rule.flow for rule in self.flows.values() if rule.flow.table == table
                      and all(packet.get(name) == value for name, value in rule.flow.match)]
        return max(candidates, key=lambda flow: flow.priority, default=None)

    def rules(self) -> dict[tuple, Flow]:
        return {key: rule.flow for key, rule in self.flows.items()}

    def group_table(self) -> dict[int, Group]:
        return dict(self.groups)

    def select_groups(self) -> dict[int, Group]:
        return {gid: group for gid, group in self.groups.items() if group.kind == SELECT}

    def wipe(self) -> None:
        """A switch restarted empty."""
        self.flows.clear()
        self.groups.clear()


def walk(switches: dict[int, FakeSwitch], neighbour: dict[tuple[int, int], tuple[int, int]],
         hosts_at: dict[tuple[int, int], str], src: Host, dst: Host) -> list[tuple]:
    """Every way a packet from ``src`` to ``dst`` can go: (labels pushed or set, switches,
    end), where the end is a host MAC, "controller", "dropped", "no rule", "loop" or a dead
    port. ``neighbour`` holds the live links only: a port is live when it leads to a host or
    over a live link."""
    outcomes = []

    def live(dpid, port):
        return (dpid, port) in hosts_at or (dpid, port) in neighbour

    def step(dpid, packet, table, visited, labels):
        if len(visited) > 2 * len(switches) + 1:
            outcomes.append((labels, visited, "loop"))
            return
        rule = switches[dpid].lookup(table, packet)
        if rule is None:
            outcomes.append((labels, visited, "no rule"))
            return
        apply(dpid, dict(packet), rule.actions, visited, labels)

    def apply(dpid, packet, actions, visited, labels):
        for kind, *args in actions:
            if kind == "controller":
                outcomes.append((labels, visited, "controller"))
                return
            if kind == "pop_mpls":
                packet["eth_type"] = args[0]
                packet.pop("mpls_label")
            elif kind == "goto":
                return step(dpid, packet, args[0], visited, labels)
            elif kind == "group":
                return group(dpid, packet, args[0], visited, labels)
            elif kind == "output":
                return send(dpid, packet, args[0], visited, labels)
        outcomes.append((labels, visited, "dropped"))

    def group(dpid, packet, group_id, visited, labels):
        chosen = switches[dpid].groups.get(group_id)
        if chosen is None:
            outcomes.append((labels, visited, f"no group {group_id}"))
            return
        if chosen.kind == FAILOVER:
            buckets = [b for b in chosen.buckets if live(dpid, b.port)][:1]
        else:  # OVS: weight 0 is never chosen, nor a watched bucket whose port is down
            buckets = [b for b in chosen.buckets
                       if b.weight and (not b.watch or live(dpid, b.port))]
        if not buckets:
            outcomes.append((labels, visited, "dropped"))
        for bucket in buckets:
            out, seen = dict(packet), labels
            if bucket.label is not None:
                out.update(eth_type=pipeline.ETH_MPLS, mpls_label=bucket.label)
                seen = labels + [bucket.label]
            if bucket.group is not None:
                group(dpid, out, bucket.group, visited, seen)
            else:
                send(dpid, out, packet["in_port"] if bucket.back else bucket.port, visited,
                     seen, back=bucket.back)

    def send(dpid, packet, port, visited, labels, back=False):
        if port == packet["in_port"] and not back:  # as OVS: "skipping output to input port"
            outcomes.append((labels, visited, "dropped (output to in_port)"))
        elif (dpid, port) in hosts_at:
            outcomes.append((labels, visited, hosts_at[dpid, port]))
        elif (dpid, port) in neighbour:
            next_dpid, in_port = neighbour[dpid, port]
            step(next_dpid, dict(packet, in_port=in_port), 0, visited + [next_dpid], labels)
        else:
            outcomes.append((labels, visited, f"dead port {dpid}:{port}"))

    start = {"eth_type": pipeline.ETH_IPV4, "eth_dst": dst.mac, "in_port": src.port}
    step(src.dpid, start, 0, [src.dpid], [])
    return outcomes


class FakeNetwork:
    """A catalog topology of fake switches (ports as in ``topologies.mininet``) under one
    ``ControlPlane``; the clock is ``self.t`` (seconds), advanced by the test."""

    def __init__(self, spec: str, plane: ControlPlane | None = None, **config: Any) -> None:
        self.graph = load_topology(spec)
        self.plane = plane or ControlPlane(ControllerConfig(topology=spec, **config))
        self.t = 1000.0
        self.hosts = {h.name: Host(h.mac, h.ip.split("/")[0], h.dpid, h.port)
                      for h in host_plan(self.graph)}
        dpid_of = {node: data["dpid"] for node, data in self.graph.nodes(data=True)}
        self.switches = {dpid: FakeSwitch(dpid) for dpid in dpid_of.values()}
        self.neighbour: dict[tuple[int, int], tuple[int, int]] = {}
        for host in self.hosts.values():
            self.switches[host.dpid].ports[host.port] = _mac(host.dpid, host.port)
        for link in link_plan(self.graph, scale=1000.0):
            a, b = dpid_of[link.edge[0]], dpid_of[link.edge[1]]
            self.neighbour[a, link.port1] = (b, link.port2)
            self.neighbour[b, link.port2] = (a, link.port1)
            self.switches[a].ports[link.port1] = _mac(a, link.port1)
            self.switches[b].ports[link.port2] = _mac(b, link.port2)
        self.down: set[tuple[int, int]] = set()  # (dpid, port) whose cable is cut
        self.hold_barriers = False
        self.log: list[tuple[int, Any]] = []  # every (dpid, message) delivered, in order

    @property
    def now(self) -> Now:
        return Now(self.t, self.t)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    # -- moving messages ---------------------------------------------------------------------
    def deliver(self, sends: list) -> None:
        """Apply what the plane returned, then feed the switches' answers back until quiet."""
        pending = deque(sends)
        pending += self.answers()
        while pending:
            dpid, message = pending.popleft()
            if dpid in self.switches and dpid in self.plane.connected:
                self.log.append((dpid, message))
                self.switches[dpid].apply(message)
            pending += self.answers()

    def answers(self) -> list:
        sends: list = []
        for switch in self.switches.values():
            kept: deque = deque()
            while switch.replies:
                reply = switch.replies.popleft()
                if reply[0] == "barrier_reply" and self.hold_barriers:
                    kept.append(reply)
                    continue
                sends += self.answer(reply)
            switch.replies = kept
        return sends

    def answer(self, reply: tuple) -> list:
        kind, *args = reply
        if kind == "port_desc":
            self.plane.port_desc(*args)
            return []
        if kind == "barrier_reply":
            return self.plane.barrier_reply(*args)
        return getattr(self.plane, kind)(*args, self.now)

    def release_barriers(self) -> None:
        self.hold_barriers = False
        self.deliver([])

    # -- events ------------------------------------------------------------------------------
    def connect(self, *dpids: int) -> None:
        for dpid in dpids or sorted(self.switches):
            self.deliver(self.plane.switch_connected(dpid, self.now))

    def disconnect(self, dpid: int) -> None:
        self.deliver(self.plane.switch_disconnected(dpid))

    def lldp_round(self) -> None:
        """One round as the app runs it: probes out (and in at the far end), expiry,
        reconciliation, barrier timeouts; then the topology update the app schedules."""
        plane, found = self.plane, False
        for dpid, message in plane.lldp_probes():
            (action,) = message.actions
            far = self.neighbour.get((dpid, action.port))
            if far is not None and (dpid, action.port) not in self.down:
                found |= plane.lldp_in(far[0], far[1], bytes(message.data))
        self.deliver(plane.expire_links())
        self.deliver(plane.finish_reconciliations(self.now))
        self.deliver(plane.fence_timeouts(self.now))
        if found:
            self.deliver(plane.topology_changed())
            self.deliver(plane.finish_reconciliations(self.now))

    def cut(self, dpid: int, port: int, report: bool = True) -> None:
        """The cable at ``dpid:port`` is unplugged: both ends report their port down (unless
        not ``report``: a controller that is down hears nothing; :meth:`report_down` later)."""
        far = self.neighbour[dpid, port]
        self.down |= {(dpid, port), far}
        if report:
            self.report_down(dpid, port)

    def report_down(self, dpid: int, port: int) -> None:
        for end in ((dpid, port), self.neighbour[dpid, port]):
            port_info = openflow.Port(end[1], self.switches[end[0]].ports[end[1]], False)
            self.deliver(self.plane.port_status(end[0], port_info, deleted=False))

    def packet_in(self, dpid: int, port: int, data: bytes) -> None:
        self.deliver(self.plane.packet_in(dpid, port, data, self.now))

    def poll(self) -> None:
        self.deliver(self.plane.poll_round(self.now))

    def walk(self, src: str, dst: str) -> list[tuple]:
        hosts_at = {(h.dpid, h.port): h.mac for h in self.hosts.values()}
        live = {end: far for end, far in self.neighbour.items()
                if end not in self.down and far not in self.down}
        return walk(self.switches, live, hosts_at, self.hosts[src], self.hosts[dst])

    def ends(self, src: str, dst: str) -> set[str]:
        return {end for _, _, end in self.walk(src, dst)}


def _mac(dpid: int, port: int) -> str:
    return f"0e:00:00:00:{dpid:02x}:{port:02x}"

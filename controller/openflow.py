"""OpenFlow 1.3 messages: the pipeline's specs turned into os-ken message objects, and back.

Plain functions that return messages not yet bound to a switch (``datapath`` is None); the app
binds and sends them. Keeping construction apart from sending lets the forwarding logic be
unit-tested without a switch, as Faucet does. The other way, what switches report (flow
entries, ports, port counters) becomes plain values here (:class:`FlowEntry`, :class:`Port`),
so the objects the app drives never see an os-ken reply.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from os_ken.lib.packet import arp, ether_types, ethernet, packet
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.pipeline import FAILOVER, TABLE_DELIVER, Action, Bucket, Flow, Group

ALL_ONES_64 = 0xFFFFFFFFFFFFFFFF
Send = tuple[int, Any]
"""(datapath id, message): what the plain objects return and the app sends."""


def _action(action: Action) -> list:
    kind, *args = action
    if kind == "output":
        return [parser.OFPActionOutput(args[0])]
    if kind == "controller":
        return [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
    if kind == "group":
        return [parser.OFPActionGroup(args[0])]
    if kind == "pop_mpls":
        return [parser.OFPActionPopMpls(args[0])]
    if kind == "push_label":
        return [parser.OFPActionPushMpls(ether_types.ETH_TYPE_MPLS),
                parser.OFPActionSetField(mpls_label=args[0])]
    if kind == "set_label":
        return [parser.OFPActionSetField(mpls_label=args[0])]
    raise ValueError(f"unknown action {action!r}")


def _instructions(actions: tuple[Action, ...]) -> list:
    applied = [a for action in actions if action[0] != "goto" for a in _action(action)]
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, applied)] if applied else []
    instructions += [parser.OFPInstructionGotoTable(action[1])
                     for action in actions if action[0] == "goto"]
    return instructions


def flow_mod(rule: Flow, cookie: int) -> parser.OFPFlowMod:
    """Add (or replace in place: same table, priority and match) one rule."""
    return parser.OFPFlowMod(
        datapath=None, cookie=cookie, table_id=rule.table, command=ofp.OFPFC_ADD,
        priority=rule.priority, match=parser.OFPMatch(**dict(rule.match)),
        instructions=_instructions(rule.actions))


def flow_delete(key: tuple, cookie: int) -> parser.OFPFlowMod:
    """Delete exactly the rule with this key, if it is ours."""
    table, priority, match = key
    return parser.OFPFlowMod(
        datapath=None, cookie=cookie, cookie_mask=ALL_ONES_64, table_id=table,
        command=ofp.OFPFC_DELETE_STRICT, priority=priority, out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY, match=parser.OFPMatch(**dict(match)))


@dataclass(frozen=True)
class FlowEntry:
    """One rule as a switch reports it (flow statistics)."""

    table: int
    priority: int
    match: dict[str, Any]
    byte_count: int = 0
    duration_s: float = 0.0
    delivers: tuple[str, int] | None = None
    """(MAC, port) when this is a host delivery rule (table 2)."""

    @property
    def key(self) -> tuple:
        """As ``Flow.key``: what identifies the rule on the switch."""
        return self.table, self.priority, tuple(sorted(self.match.items()))


def flow_entry(stats) -> FlowEntry:
    """An ``OFPFlowStats`` as a plain value."""
    return FlowEntry(stats.table_id, stats.priority, dict(stats.match.items()), stats.byte_count,
                     stats.duration_sec + stats.duration_nsec / 1e9, delivered_host(stats))


@dataclass(frozen=True)
class Port:
    """A switch port as the switch describes it (port description or port status)."""

    port_no: int
    hw_addr: str
    live: bool
    """A physical port that is administratively and physically up."""
    speed_mbps: float = 0.0


def port_of(desc) -> Port:
    """An ``OFPPort`` as a plain value."""
    live = (desc.port_no <= ofp.OFPP_MAX and not desc.config & ofp.OFPPC_PORT_DOWN
            and not desc.state & ofp.OFPPS_LINK_DOWN)
    return Port(desc.port_no, desc.hw_addr, bool(live), (desc.curr_speed or 0) / 1000)


def port_samples(body) -> list[tuple[int, int, float]]:
    """(port, tx_bytes, duration_s) of every physical port of an ``OFPPortStatsReply``."""
    return [(stats.port_no, stats.tx_bytes, stats.duration_sec + stats.duration_nsec / 1e9)
            for stats in body if stats.port_no <= ofp.OFPP_MAX]


def more_follows(msg) -> bool:
    """A multipart reply with more parts to come."""
    return bool(msg.flags & ofp.OFPMPF_REPLY_MORE)


def is_lldp(data: bytes) -> bool:
    return len(data) >= 14 and int.from_bytes(data[12:14], "big") == ether_types.ETH_TYPE_LLDP


def flow_key(stats) -> tuple:
    """The key of a rule read back from a switch (flow stats), as ``Flow.key``."""
    return stats.table_id, stats.priority, tuple(sorted(stats.match.items()))


def delivered_host(stats) -> tuple[str, int] | None:
    """(MAC, port) of a host delivery rule read back from a switch (table 2), else None."""
    if stats.table_id != TABLE_DELIVER or "eth_dst" not in stats.match:
        return None
    for instruction in stats.instructions:
        for action in getattr(instruction, "actions", []):
            if isinstance(action, parser.OFPActionOutput):
                return stats.match["eth_dst"], action.port
    return None


def _bucket(bucket: Bucket, kind: str) -> parser.OFPBucket:
    """A SELECT bucket pushes its label, a failover bucket sets it (or keeps it: None); a
    failover bucket back to where the packet came from outputs to ``IN_PORT`` (an output to
    the in-port by number is dropped)."""
    if kind == FAILOVER:
        relabel = [] if bucket.label is None else _action(("set_label", bucket.label))
        out = ofp.OFPP_IN_PORT if bucket.back else bucket.port
        return parser.OFPBucket(watch_port=bucket.port,
                                actions=relabel + [parser.OFPActionOutput(out)])
    onwards = ("output", bucket.port) if bucket.group is None else ("group", bucket.group)
    return parser.OFPBucket(weight=bucket.weight,
                            watch_port=bucket.port if bucket.watch else ofp.OFPP_ANY,
                            actions=_action(("push_label", bucket.label)) + _action(onwards))


def group_mod(group: Group, command: int) -> parser.OFPGroupMod:
    return parser.OFPGroupMod(
        datapath=None, command=command,
        type_=ofp.OFPGT_FF if group.kind == FAILOVER else ofp.OFPGT_SELECT,
        group_id=group.group_id, buckets=[_bucket(bucket, group.kind) for bucket in group.buckets])


def group_add(group: Group) -> parser.OFPGroupMod:
    return group_mod(group, ofp.OFPGC_ADD)


def group_modify(group: Group) -> parser.OFPGroupMod:
    return group_mod(group, ofp.OFPGC_MODIFY)


def group_delete(group_id: int) -> parser.OFPGroupMod:
    return parser.OFPGroupMod(datapath=None, command=ofp.OFPGC_DELETE, type_=ofp.OFPGT_SELECT,
                              group_id=group_id, buckets=[])


def packet_out(port_no: int, data: bytes) -> parser.OFPPacketOut:
    return parser.OFPPacketOut(
        datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port_no)], data=data)


def packet_to_table(in_port: int, data: bytes) -> parser.OFPPacketOut:
    """Send a packet back through the switch's own tables, as if it had just arrived."""
    return parser.OFPPacketOut(
        datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
        actions=[parser.OFPActionOutput(ofp.OFPP_TABLE)], data=data)


def port_desc_request() -> parser.OFPPortDescStatsRequest:
    return parser.OFPPortDescStatsRequest(datapath=None, flags=0)


def own_flows_request(cookie: int, table_id: int = ofp.OFPTT_ALL) -> parser.OFPFlowStatsRequest:
    return parser.OFPFlowStatsRequest(
        datapath=None, flags=0, table_id=table_id, out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY, cookie=cookie, cookie_mask=ALL_ONES_64, match=parser.OFPMatch())


def group_desc_request() -> parser.OFPGroupDescStatsRequest:
    return parser.OFPGroupDescStatsRequest(datapath=None, flags=0)


def port_stats_request() -> parser.OFPPortStatsRequest:
    return parser.OFPPortStatsRequest(datapath=None, flags=0, port_no=ofp.OFPP_ANY)


def barrier() -> parser.OFPBarrierRequest:
    return parser.OFPBarrierRequest(datapath=None)


def arp_packet(opcode: int, src_mac: str, src_ip: str, dst_mac: str, dst_ip: str,
               eth_dst: str | None = None) -> bytes:
    frame = packet.Packet()
    frame.add_protocol(ethernet.ethernet(dst=eth_dst or dst_mac, src=src_mac,
                                         ethertype=ether_types.ETH_TYPE_ARP))
    frame.add_protocol(arp.arp(opcode=opcode, src_mac=src_mac, src_ip=src_ip,
                               dst_mac=dst_mac, dst_ip=dst_ip))
    frame.serialize()
    return bytes(frame.data)

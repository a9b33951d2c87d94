"""Builders of the OpenFlow 1.3 messages the app sends.

Plain functions that return os-ken message objects not yet bound to a switch (``datapath`` is
None); the app binds and sends them. Keeping construction apart from sending lets the
forwarding logic be unit-tested without a switch, as Faucet does.
"""
from __future__ import annotations

from os_ken.lib.packet import ether_types
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

ALL_ONES_64 = 0xFFFFFFFFFFFFFFFF

PRIORITY_TABLE_MISS = 0
PRIORITY_CONTROL = 60000
"""Control traffic (LLDP) above anything forwarding may install."""


def flow_add(
    cookie: int,
    priority: int,
    match: parser.OFPMatch,
    actions: list,
    table_id: int = 0,
) -> parser.OFPFlowMod:
    instructions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
    return parser.OFPFlowMod(
        datapath=None, cookie=cookie, table_id=table_id, command=ofp.OFPFC_ADD,
        priority=priority, match=match, instructions=instructions,
    )


def to_controller() -> list:
    return [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]


def table_miss(cookie: int) -> parser.OFPFlowMod:
    """Unmatched packets go to the controller (host learning, ARP); nothing is flooded."""
    return flow_add(cookie, PRIORITY_TABLE_MISS, parser.OFPMatch(), to_controller())


def lldp_to_controller(cookie: int) -> parser.OFPFlowMod:
    match = parser.OFPMatch(eth_type=ether_types.ETH_TYPE_LLDP)
    return flow_add(cookie, PRIORITY_CONTROL, match, to_controller())


def delete_own_flows(cookie: int) -> parser.OFPFlowMod:
    """Remove every rule with our cookie in every table, and nothing else."""
    return parser.OFPFlowMod(
        datapath=None, cookie=cookie, cookie_mask=ALL_ONES_64, table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
        match=parser.OFPMatch(),
    )


def packet_out(port_no: int, data: bytes) -> parser.OFPPacketOut:
    return parser.OFPPacketOut(
        datapath=None, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port_no)], data=data,
    )


def port_desc_request() -> parser.OFPPortDescStatsRequest:
    return parser.OFPPortDescStatsRequest(datapath=None, flags=0)


def barrier() -> parser.OFPBarrierRequest:
    return parser.OFPBarrierRequest(datapath=None)

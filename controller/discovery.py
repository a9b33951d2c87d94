"""Switch-to-switch link discovery by LLDP, as a plain object with no os-ken app around it.

Every live port of every switch periodically sends an LLDP frame that names its switch and port;
a switch receiving it on port P hands it to the controller (our LLDP rule), which learns the
directed link (sender switch, sender port) -> (receiver switch, P). A link that misses
``timeout_rounds`` rounds of probes, or whose port or switch goes down, is removed.

Time is counted in probe rounds actually sent, not in seconds: a controller that stalls (a
starved machine, a long garbage collection) sends no probes meanwhile and so does not declare
every link dead at once when it wakes up.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from os_ken.lib.packet import ether_types, ethernet, lldp, packet

LOG = logging.getLogger(__name__)

LLDP_MULTICAST = "01:80:c2:00:00:0e"
CHASSIS_PREFIX = b"dpid:"
PROBE_TTL_S = 120


@dataclass(frozen=True, order=True)
class Link:
    """A directed link between two switch ports."""

    src: int
    src_port: int
    dst: int
    dst_port: int

    @property
    def nodes(self) -> tuple[int, int]:
        return self.src, self.dst


def lldp_frame(dpid: int, port_no: int, hw_addr: str) -> bytes:
    """The probe sent out of ``port_no`` of switch ``dpid``."""
    frame = packet.Packet()
    frame.add_protocol(ethernet.ethernet(
        dst=LLDP_MULTICAST, src=hw_addr, ethertype=ether_types.ETH_TYPE_LLDP))
    frame.add_protocol(lldp.lldp([
        lldp.ChassisID(subtype=lldp.ChassisID.SUB_LOCALLY_ASSIGNED,
                       chassis_id=CHASSIS_PREFIX + f"{dpid:016x}".encode()),
        lldp.PortID(subtype=lldp.PortID.SUB_PORT_COMPONENT, port_id=str(port_no).encode()),
        lldp.TTL(ttl=PROBE_TTL_S),
        lldp.End(),
    ]))
    frame.serialize()
    return bytes(frame.data)


def parse_lldp_frame(data: bytes) -> tuple[int, int] | None:
    """(dpid, port) of one of our probes, or None for anything else (foreign LLDP, garbage)."""
    try:
        message = packet.Packet(data).get_protocol(lldp.lldp)
        if message is None or len(message.tlvs) < 2:
            return None
        chassis, port = message.tlvs[0], message.tlvs[1]
        if not chassis.chassis_id.startswith(CHASSIS_PREFIX):
            return None
        return int(chassis.chassis_id[len(CHASSIS_PREFIX):], 16), int(port.port_id)
    except Exception:  # a malformed frame from the wire must never reach the app
        LOG.debug("ignoring malformed LLDP frame of %d bytes", len(data))
        return None


class LinkDiscovery:
    """The set of live switches, their ports and the links LLDP has confirmed."""

    def __init__(self, timeout_rounds: int = 3) -> None:
        self.timeout_rounds = timeout_rounds
        self.round = 0
        self._ports: dict[int, dict[int, str]] = {}
        self._last_seen: dict[Link, int] = {}

    @property
    def switches(self) -> list[int]:
        return sorted(self._ports)

    @property
    def links(self) -> list[Link]:
        return sorted(self._last_seen)

    def ports(self, dpid: int) -> dict[int, str]:
        return dict(self._ports.get(dpid, {}))

    def switch_up(self, dpid: int, ports: dict[int, str]) -> None:
        """Record a switch and its live ports (port number -> MAC address)."""
        self._ports[dpid] = dict(ports)

    def switch_down(self, dpid: int) -> list[Link]:
        self._ports.pop(dpid, None)
        return self._drop(lambda link: dpid in link.nodes)

    def port_up(self, dpid: int, port_no: int, hw_addr: str) -> bool:
        """Record a live port; True when it was not live before."""
        if dpid not in self._ports:
            return False
        is_new = port_no not in self._ports[dpid]
        self._ports[dpid][port_no] = hw_addr
        return is_new

    def port_down(self, dpid: int, port_no: int) -> list[Link]:
        self._ports.get(dpid, {}).pop(port_no, None)
        return self._drop(lambda link: (link.src, link.src_port) == (dpid, port_no)
                          or (link.dst, link.dst_port) == (dpid, port_no))

    def probes(self) -> list[tuple[int, int, bytes]]:
        """(dpid, port, frame) for every live port: what to send in a new round."""
        self.round += 1
        return [(dpid, port_no, lldp_frame(dpid, port_no, hw_addr))
                for dpid, ports in sorted(self._ports.items())
                for port_no, hw_addr in sorted(ports.items())]

    def lldp_received(self, dpid: int, in_port: int, data: bytes) -> Link | None:
        """Refresh the link this probe proves; returns it only when it is new."""
        origin = parse_lldp_frame(data)
        if origin is None:
            return None
        src, src_port = origin
        if src not in self._ports or in_port not in self._ports.get(dpid, {}):
            return None  # a probe from a switch or to a port we do not (yet) know
        link = Link(src, src_port, dpid, in_port)
        is_new = link not in self._last_seen
        self._last_seen[link] = self.round
        return link if is_new else None

    def expire(self) -> list[Link]:
        """Drop links that missed more than ``timeout_rounds`` rounds; returns them."""
        return self._drop(lambda link: self.round - self._last_seen[link] > self.timeout_rounds)

    def _drop(self, condition) -> list[Link]:
        gone = [link for link in self._last_seen if condition(link)]
        for link in gone:
            del self._last_seen[link]
        return sorted(gone)

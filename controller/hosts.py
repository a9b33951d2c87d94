"""Hosts: frames from hosts validated, hosts learned, proxy ARP and ARP probes.

The controller answers every ARP request itself (nothing is ever flooded); an address it does
not know yet is probed on every edge port, and the asker is answered once the host shows up.
:class:`HostResolver` keeps that state and returns the frames to send; ``ControlPlane``
orders them behind the rules they depend on (a ``Fence``).
"""
from __future__ import annotations

import ipaddress
import logging
from collections import defaultdict
from dataclasses import dataclass

from os_ken.lib.packet import arp, ether_types, ethernet, ipv4, packet

from controller import openflow
from controller.network import NetworkView
from controller.openflow import Send
from controller.pipeline import Host

LOG = logging.getLogger("ryute.controller")
PROBE_MAC = "02:72:79:75:74:65"
"""Source MAC of the controller's own ARP probes (locally administered)."""
PROBE_INTERVAL_S = 1.0
ARP_REQUEST, ARP_REPLY = arp.ARP_REQUEST, arp.ARP_REPLY


@dataclass(frozen=True)
class ArpIn:
    """An ARP request or reply from a host, validated."""

    opcode: int
    src_mac: str
    src_ip: str
    dst_ip: str


@dataclass(frozen=True)
class Ipv4In:
    """An IPv4 packet from a host that no ingress rule matched (yet), validated."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str


Asker = tuple[int, int, str, str]
"""(dpid, port, MAC, IP) of a host waiting for an ARP answer."""


class HostResolver:
    """Pending ARP requests per unknown address and when each address was last probed."""

    def __init__(self, view: NetworkView) -> None:
        self.view = view
        self.pending: dict[str, set[Asker]] = defaultdict(set)
        self.last_probe: dict[str, float] = {}

    def read(self, dpid: int, in_port: int, data: bytes) -> ArpIn | Ipv4In | None:
        """The ARP or IPv4 packet in ``data``, or None (ignored: not from a host, or
        malformed, which is logged)."""
        try:
            frame = packet.Packet(data)
        except Exception:
            LOG.info("ignoring a malformed packet-in from %s:%d", self.view.name(dpid), in_port)
            return None
        eth = frame.get_protocol(ethernet.ethernet)
        if eth is None or eth.src == PROBE_MAC:
            return None
        request, ip = frame.get_protocol(arp.arp), frame.get_protocol(ipv4.ipv4)
        if (problem := malformed(eth, request, ip)) is not None:
            LOG.info("ignoring a malformed packet-in from %s:%d (%s)", self.view.name(dpid),
                     in_port, problem)
            return None
        if request is not None:
            return ArpIn(request.opcode, request.src_mac, request.src_ip, request.dst_ip)
        if ip is not None:
            return Ipv4In(eth.src, eth.dst, ip.src, ip.dst)
        return None

    def learn(self, mac: str, ip: str, dpid: int, port: int) -> Host | None:
        """A host seen at an edge port; returns it when it is new or moved."""
        if ip == "0.0.0.0" or not self.view.is_edge_port(dpid, port):
            return None
        host = self.view.learn_host(mac, ip, dpid, port)
        if host is not None:
            LOG.info("host %s (%s) at %s:%d", ip, mac, self.view.name(dpid), port)
        return host

    def wait_for(self, ip: str, asker: Asker) -> None:
        self.pending[ip].add(asker)

    def askers(self, ip: str) -> set[Asker]:
        """The hosts waiting for ``ip``, no longer waiting."""
        return self.pending.pop(ip, set())

    @staticmethod
    def answer(target: Host, asker: Asker) -> Send:
        """Proxy ARP: the controller answers for the host."""
        dpid, port, asker_mac, asker_ip = asker
        reply = openflow.arp_packet(ARP_REPLY, target.mac, target.ip, asker_mac, asker_ip)
        return dpid, openflow.packet_out(port, reply)

    def probe(self, ip: str, now: float) -> list[Send]:
        """Ask every edge port who has ``ip`` (at most once a second per address)."""
        if now - self.last_probe.get(ip, -PROBE_INTERVAL_S) < PROBE_INTERVAL_S:
            return []
        self.last_probe[ip] = now
        probe = openflow.arp_packet(ARP_REQUEST, PROBE_MAC, "0.0.0.0", "00:00:00:00:00:00",
                                    ip, eth_dst="ff:ff:ff:ff:ff:ff")
        return [(dpid, openflow.packet_out(port, probe)) for dpid, port in self.view.edge_ports()]


def malformed(eth, request, ip) -> str | None:
    """Why an ARP or IPv4 frame from a host cannot be learned from (None: it can).

    os-ken parses what it can and leaves the rest as raw bytes, so a truncated ARP or IPv4
    frame arrives without its protocol, and a garbled one with nonsense fields: neither may
    teach the controller a host (a broadcast MAC, or a known host's MAC at a broadcast IP).
    """
    if eth.ethertype == ether_types.ETH_TYPE_ARP:
        if request is None:
            return "truncated ARP"
        if ((request.hwtype, request.proto, request.hlen, request.plen) != (1, 0x0800, 6, 4)
                or request.opcode not in (arp.ARP_REQUEST, arp.ARP_REPLY)):
            return "not an ARP for IPv4 over Ethernet"
        if not _unicast_mac(request.src_mac) or not _host_address(request.src_ip, zero=True):
            return f"ARP sender {request.src_mac} {request.src_ip}"
    elif eth.ethertype == ether_types.ETH_TYPE_IP:
        if ip is None:
            return "truncated IPv4"
        if ip.version != 4 or ip.header_length < 5:
            return "bad IPv4 header"
        if not _host_address(ip.src):
            return f"IPv4 source {ip.src}"
    if not _unicast_mac(eth.src):
        return f"source MAC {eth.src}"
    return None


def _unicast_mac(mac: str) -> bool:
    return not int(mac.split(":")[0], 16) & 1


def _host_address(address: str, zero: bool = False) -> bool:
    """An address a host may have (or 0.0.0.0, which ARP probes use, with ``zero``)."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        return False
    if ip.is_unspecified:
        return zero
    return not (ip.is_multicast or ip.is_loopback or ip == ipaddress.IPv4Address(
        "255.255.255.255"))

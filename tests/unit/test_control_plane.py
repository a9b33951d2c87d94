"""The controller's behaviour without root: a ``ControlPlane`` drives fake switches.

Every message the plane returns is applied to ``fake_switch.FakeSwitch`` tables, whose answers
go back through the app's own translations; packets are then walked through the tables. So
restart reconciliation, malformed packets, the order of ARP answers and rules, and link
failures are checked here in milliseconds, and in Mininet by tests/integration.
"""
from __future__ import annotations

import logging

import pytest
from fake_switch import FakeNetwork
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller import openflow, pipeline
from controller.config import ControllerConfig
from controller.hosts import ARP_REPLY, ARP_REQUEST, PROBE_MAC
from controller.plane import ControlPlane

BROADCAST = "ff:ff:ff:ff:ff:ff"


def arp_request(host, ip: str) -> bytes:
    return openflow.arp_packet(ARP_REQUEST, host.mac, host.ip, "00:00:00:00:00:00", ip,
                               eth_dst=BROADCAST)


def ask(net: FakeNetwork, asker: str, target: str) -> None:
    host = net.hosts[asker]
    net.packet_in(host.dpid, host.port, arp_request(host, net.hosts[target].ip))


def answer_probe(net: FakeNetwork, name: str) -> None:
    host = net.hosts[name]
    net.packet_in(host.dpid, host.port, openflow.arp_packet(
        ARP_REPLY, host.mac, host.ip, PROBE_MAC, "0.0.0.0"))


def arp_replies_to(net: FakeNetwork, name: str) -> list[bytes]:
    host = net.hosts[name]
    return [data for port, data in net.switches[host.dpid].packets_out
            if port == host.port and data[:6] == bytes.fromhex(host.mac.replace(":", ""))]


def ready(spec: str = "ring:n=4", **config) -> FakeNetwork:
    """Connected, links discovered, every host known (each announced itself once)."""
    net = FakeNetwork(spec, **config)
    net.connect()
    net.lldp_round()
    for name in net.hosts:
        answer_probe(net, name)
    return net


def delivers_everywhere(net: FakeNetwork) -> bool:
    return all(net.ends(src, dst) == {net.hosts[dst].mac}
               for src in net.hosts for dst in net.hosts if src != dst)


def desired(net: FakeNetwork, dpid: int) -> dict:
    plane = net.plane
    return pipeline.desired_flows(plane.view.fabric(), dpid)


def test_a_network_comes_up_and_every_host_reaches_every_other():
    net = ready("abilene")
    assert net.plane.sync.ready == set(net.switches)
    assert delivers_everywhere(net)
    for dpid, switch in net.switches.items():
        assert switch.rules() == desired(net, dpid) and not switch.errors


def test_a_restarted_controller_changes_nothing_until_the_links_are_known_then_only_what_differs():
    net = ready()
    before = {dpid: (switch.rules(), switch.group_table()) for dpid, switch in net.switches.items()}
    stale_key = (pipeline.TABLE_INGRESS, pipeline.PRIORITY_HOST,
                 (("eth_dst", "0e:99:99:99:99:99"), ("eth_type", pipeline.ETH_IPV4)))
    ours, foreign = net.plane.config.cookie, 0x1234
    for cookie, mac in ((ours, "0e:99:99:99:99:99"), (foreign, "0e:88:88:88:88:88")):
        net.switches[1].apply(openflow.flow_mod(pipeline.flow(
            pipeline.TABLE_INGRESS, pipeline.PRIORITY_HOST, (("output", 1),),
            eth_type=pipeline.ETH_IPV4, eth_dst=mac), cookie))
    net.plane = ControlPlane(ControllerConfig(topology="ring:n=4"))  # the new process
    net.connect()
    net.advance(1.0)
    for dpid, switch in net.switches.items():  # connected, read back, nothing removed
        rules = before[dpid][0]
        assert set(rules) <= set(switch.rules()), "a rule was removed before the links were known"
    assert not net.plane.sync.ready
    net.lldp_round()
    assert net.plane.sync.ready == set(net.switches)
    assert set(net.plane.view.hosts) == {h.mac for h in net.hosts.values()}  # from the rules
    for dpid, switch in net.switches.items():
        rules = switch.rules()
        if dpid == 1:
            assert stale_key not in rules  # ours and stale: deleted
            del rules[next(k for k in rules if ("eth_dst", "0e:88:88:88:88:88") in k[2])]
        assert (rules, switch.group_table()) == before[dpid], dpid  # foreign rule kept
        assert not switch.errors  # groups found were modified, not added twice
    assert delivers_everywhere(net)


def test_a_switch_still_to_reconnect_keeps_the_others_from_being_taken_over():
    net = ready()
    net.plane = ControlPlane(ControllerConfig(topology="ring:n=4"))
    net.connect(1, 2, 3)  # switch 4 comes later
    net.lldp_round()
    assert not net.plane.sync.ready
    net.advance(net.plane.config.link_timeout_s + 0.1)  # ... too late: take over anyway
    net.lldp_round()
    assert net.plane.sync.ready == {1, 2, 3}
    net.connect(4)
    net.lldp_round()
    assert net.plane.sync.ready == {1, 2, 3, 4}
    late = next(name for name, host in net.hosts.items() if host.dpid == 4)
    assert net.hosts[late].mac in net.plane.view.hosts  # read back from its delivery rule
    answer_probe(net, late)  # its address comes with its next ARP; the others' rules with it
    assert delivers_everywhere(net)


def test_a_switch_that_comes_back_empty_gets_its_state_reinstalled():
    net = ready()
    net.disconnect(2)
    net.switches[2].wipe()
    net.connect(2)
    net.lldp_round()
    assert net.switches[2].rules() == desired(net, 2) and not net.switches[2].errors
    assert delivers_everywhere(net)


@pytest.mark.parametrize("name, frame", [
    ("runt", b"\x00" * 10),
    ("truncated ARP", None),
    ("broadcast sender MAC", "arp-broadcast-mac"),
    ("multicast IPv4 source", "ipv4-multicast"),
    ("bad IPv4 header", "ipv4-bad-header"),
    ("garbage", b"\xff" * 12 + b"\x08\x06" + b"\x00" * 3),
])
def test_malformed_packets_teach_nothing_and_send_nothing(name, frame, caplog):
    net = ready()
    host = net.hosts[next(iter(net.hosts))]
    valid = arp_request(host, "10.0.0.99")
    frames = {
        None: valid[:24],
        "arp-broadcast-mac": valid[:22] + bytes.fromhex("ffffffffffff") + valid[28:],
        "ipv4-multicast": _ipv4(host.mac, "224.0.0.1", "10.0.0.2"),
        "ipv4-bad-header": _ipv4(host.mac, "10.0.0.1", "10.0.0.2", version_ihl=0x43),
    }
    data = frames.get(frame, frame) if not isinstance(frame, bytes) else frame
    hosts_before = dict(net.plane.view.hosts)
    with caplog.at_level(logging.DEBUG, logger="ryute.controller"):
        sends = net.plane.packet_in(host.dpid, host.port, data, net.now)
    assert sends == [] and net.plane.view.hosts == hosts_before
    assert any("malformed" in r.message or "runt" in r.message for r in caplog.records), name


def _ipv4(src_mac: str, src: str, dst: str, version_ihl: int = 0x45) -> bytes:
    import ipaddress

    header = bytes([version_ihl, 0]) + (20).to_bytes(2, "big") + bytes(4) + bytes([64, 17]) \
        + bytes(2) + ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    return bytes.fromhex("0e0000000002") + bytes.fromhex(src_mac.replace(":", "")) \
        + b"\x08\x00" + header


def test_an_arp_answer_waits_for_the_rules_on_every_switch():
    net = FakeNetwork("ring:n=4")
    net.connect()
    net.lldp_round()
    names = sorted(net.hosts)
    a, b = names[0], names[2]
    ask(net, a, b)  # b is unknown: probed on every edge port, a waits
    probes = [data for switch in net.switches.values() for _, data in switch.packets_out
              if data[6:12] == bytes.fromhex(PROBE_MAC.replace(":", ""))]
    assert len(probes) == len(net.hosts) and not arp_replies_to(net, a)
    net.hold_barriers = True
    sent_before = len(net.log)
    answer_probe(net, b)  # b is learned: its rules go out, then barriers on every switch
    assert not arp_replies_to(net, a), "answered before the rules were confirmed"
    sent = [message for _, message in net.log[sent_before:]]
    barriers = [i for i, m in enumerate(sent) if isinstance(m, parser.OFPBarrierRequest)]
    assert len(barriers) == len(net.switches)
    assert all(isinstance(m, (parser.OFPFlowMod, parser.OFPGroupMod))
               for m in sent[:barriers[0]]) and barriers[0] > 0  # the rules, then barriers
    ask(net, a, b)  # known now, but the fence is still up: this answer waits as well
    assert not arp_replies_to(net, a)
    net.release_barriers()
    assert len(arp_replies_to(net, a)) == 2
    assert net.ends(a, b) == {net.hosts[b].mac} and net.ends(b, a) == {net.hosts[a].mac}


def test_a_switch_that_never_answers_a_barrier_holds_arp_answers_two_seconds_at_most():
    net = ready()
    names = sorted(net.hosts)
    net.hold_barriers = True
    net.plane.view.hosts.pop(net.hosts[names[1]].mac)  # forget one host: it is learned again
    answer_probe(net, names[1])
    ask(net, names[0], names[1])
    assert not arp_replies_to(net, names[0])
    net.advance(1.0)
    net.lldp_round()
    assert not arp_replies_to(net, names[0])
    net.advance(1.5)
    net.lldp_round()
    assert len(arp_replies_to(net, names[0])) == 1


def test_an_unknown_address_is_probed_at_most_once_a_second():
    net = ready()
    name = sorted(net.hosts)[0]
    host = net.hosts[name]

    def probes():
        return sum(data[6:12] == bytes.fromhex(PROBE_MAC.replace(":", ""))
                   for switch in net.switches.values() for _, data in switch.packets_out)

    net.packet_in(host.dpid, host.port, arp_request(host, "10.9.9.9"))
    first = probes()
    net.advance(0.5)
    net.packet_in(host.dpid, host.port, arp_request(host, "10.9.9.9"))
    assert first == len(net.hosts) and probes() == first
    net.advance(0.6)
    net.packet_in(host.dpid, host.port, arp_request(host, "10.9.9.9"))
    assert probes() == 2 * first


def test_a_link_down_moves_traffic_off_it_at_once_with_weights_only():
    net = ready("ring:n=5")
    (dpid, port), far = next((end, far) for end, far in sorted(net.neighbour.items()))
    flow_mods = sum(switch.flow_mods for switch in net.switches.values())
    net.cut(dpid, port)
    assert sum(switch.flow_mods for switch in net.switches.values()) == flow_mods
    assert delivers_everywhere(net)  # no bucket with weight still points at the cut link
    dead = net.plane.view.down_links()
    assert len(dead) == 2
    # The link comes back: LLDP finds it again and weights return to it.
    net.down.clear()
    for end in ((dpid, port), far):
        net.deliver(net.plane.port_status(
            end[0], openflow.Port(end[1], net.switches[end[0]].ports[end[1]], True), False))
    net.lldp_round()
    assert not net.plane.view.down_links() and delivers_everywhere(net)
    assert any(b.weight for s in net.switches.values() for g in s.select_groups().values()
               for b in g.buckets if (s.dpid, b.port) == (dpid, port))


def _end_of(net: FakeNetwork, u: str, v: str) -> tuple[int, int]:
    """(dpid, port) at u of the link u-v."""
    dpid_u, dpid_v = (net.graph.nodes[n]["dpid"] for n in (u, v))
    return next(end for end, far in net.neighbour.items()
                if end[0] == dpid_u and far[0] == dpid_v)


@pytest.mark.parametrize("u, v", [
    ("IPLSng", "KSCYng"),  # a transit link of many paths
    ("CHINng", "IPLSng"),  # one whose detours are tunnels beyond the path set for some pairs
])
def test_with_the_controller_down_the_switches_alone_repair_a_link_failure(u, v):
    net = ready("abilene")
    dpid, port = _end_of(net, u, v)
    group_mods = sum(switch.group_mods for switch in net.switches.values())
    net.cut(dpid, port, report=False)  # the controller hears nothing
    assert delivers_everywhere(net)
    # The controller comes back and hears of it: the proper decision, weights only.
    net.report_down(dpid, port)
    assert sum(switch.group_mods for switch in net.switches.values()) > group_mods
    # Every OD pair with a live path in the path set is moved onto live paths; the others
    # (all their paths cross the link) are still carried, by the detour tunnels.
    paths = net.plane.view.state.path_set
    live = paths.live_paths(net.plane.view.down_links())
    for s in net.switches.values():
        for g in s.select_groups().values():
            od = paths.od_index(net.plane.name(s.dpid), net.plane.name(g.group_id))
            weighted = [p for p in paths.paths_of(od) if net.plane.decision.weights[p] > 0]
            assert all(live[weighted]) or not any(live[p] for p in paths.paths_of(od))
    assert delivers_everywhere(net)
    assert not any(switch.errors for switch in net.switches.values())


def test_without_local_repair_a_link_failure_waits_for_the_controller():
    net = ready("abilene", local_repair=False)
    assert not any(g.kind == pipeline.FAILOVER or any(b.watch for b in g.buckets)
                   for s in net.switches.values() for g in s.groups.values())
    dpid, port = _end_of(net, "IPLSng", "KSCYng")
    net.cut(dpid, port, report=False)
    assert not delivers_everywhere(net)
    net.report_down(dpid, port)
    assert delivers_everywhere(net)


def test_a_link_that_goes_silent_times_out_and_traffic_moves_off_it():
    net = ready("ring:n=5")
    (dpid, port), _ = next(iter(sorted(net.neighbour.items())))
    far = net.neighbour[dpid, port]
    net.down |= {(dpid, port), far}  # no port status: the probes just stop arriving
    for _ in range(net.plane.discovery.timeout_rounds + 1):
        net.lldp_round()
    assert len(net.plane.view.down_links()) == 2 and delivers_everywhere(net)


def test_a_switch_that_disconnects_does_not_hold_the_fence():
    net = ready()
    names = sorted(net.hosts)
    asker = net.hosts[names[0]]
    silent = next(dpid for dpid in sorted(net.switches) if dpid != asker.dpid)
    net.hold_barriers = True
    net.plane.view.hosts.pop(net.hosts[names[1]].mac)  # forget one host: it is learned again
    answer_probe(net, names[1])
    ask(net, names[0], names[1])
    for switch in net.switches.values():  # every switch answers its barrier but one
        if switch.dpid != silent:
            for reply in [r for r in switch.replies if r[0] == "barrier_reply"]:
                net.deliver(net.plane.barrier_reply(*reply[1:]))
            switch.replies.clear()
    assert not arp_replies_to(net, names[0])
    net.switches[silent].replies.clear()
    net.disconnect(silent)
    assert len(arp_replies_to(net, names[0])) == 1


def test_statistics_close_the_interval_and_decide():
    net = ready()
    decided = net.plane.last_decision_at
    net.advance(2.0)
    net.poll()  # every switch answers both requests: the interval closes
    assert net.plane.last_decision_at == net.t != decided
    assert net.plane.loop.latest_record().source == "fallback"

"""Local repair on real Open vSwitch: with the controller frozen (SIGSTOP), a link fails under
traffic and the switches move the traffic onto a detour by themselves; once the controller
runs again it installs the proper decision (the fallback without the link).

Three links, chosen from the fallback's decision (computed here from the TE core): the middle
link of the longest single path (repaired by the transit switch before it, through its
fast-failover group), the first link of one (repaired at the ingress), and one whose switch
before it detours back to the switch the traffic came from (out of the port it came in by). The hosts' ARP
entries are pinned first (``Testbed.pin_arp``): a frozen controller answers no ARP.
"""
from __future__ import annotations

import time

import expectations as ex
import pytest

from lab.testbed import Testbed
from sim.detours import detours

PING_INTERVAL_S = 0.01
PINGS = 400
UDP_PAYLOAD = 100
UDP_MBPS = 0.4  # 500 datagrams a second
OUTAGE_LIMIT_MS = 500  # the benchmark measures it (target < 100 ms); here: restored, and soon


@pytest.fixture(scope="module")
def net():
    with Testbed("abilene", switch_prefix="r", host_prefix="q") as testbed:
        ex.wait_until_ready(testbed)
        assert testbed.net.pingAll(timeout=2) == 0
        yield testbed


def failover_groups(testbed: Testbed) -> dict[str, dict]:
    return {switch: {gid: group for gid, group in testbed.dump_groups(switch).items()
                     if group.type == "ff"} for switch in sorted(testbed.bridges)}


def back_victim(paths, decision) -> tuple[str, str, int, tuple[str, str]]:
    """A single-path pair and a link of its path whose switch before it detours back to the
    switch before that (the longest such path)."""
    found = detours(paths)
    candidates = []
    for src, dst, path_id in ex.single_path_pairs(paths, decision):
        path = paths.paths[path_id]
        for i in range(1, len(path) - 1):
            options = found.by_hop.get((path[i], path[i + 1], dst))
            live = paths.live_paths(ex.both_ways((path[i], path[i + 1])))
            if options and options[0].next_hop == path[i - 1] and any(
                    live[p] for p in paths.paths_of((dst, src))):
                candidates.append((len(path), src, dst, path_id, (path[i], path[i + 1])))
    assert candidates, "no detour back to where the traffic came from"
    return max(candidates)[1:]


@pytest.mark.parametrize("kind", ["transit", "ingress", "back"])
def test_the_switches_repair_a_link_failure_while_the_controller_is_stopped(net, measure, kind):
    paths = ex.path_set(net)
    healthy = ex.fallback(paths)
    src, dst, path_id, (u, v) = (back_victim(paths, healthy) if kind == "back" else
                                 ex.victim(paths, healthy, first_hop=kind == "ingress"))
    dead = ex.both_ways((u, v))
    degraded = ex.fallback(paths, down_links=dead)
    ex.wait_for_groups(net, ex.expected_groups(net, paths, healthy), timeout_s=20)
    # Every switch holds fast-failover groups, each bucket watching the port it outputs on.
    ff_before = failover_groups(net)
    assert sum(len(groups) for groups in ff_before.values()) > len(net.bridges)

    h_src, h_dst = ex.host_of(net, src), ex.host_of(net, dst)
    s_u, s_v = ex.switch_of(net, u), ex.switch_of(net, v)
    net.pin_arp(h_src, h_dst)
    ping = net.ping(h_src, h_dst, count=PINGS, interval_s=PING_INTERVAL_S)
    udp = net.iperf3(h_src, h_dst, seconds=PINGS * PING_INTERVAL_S, udp_mbps=UDP_MBPS,
                     length=UDP_PAYLOAD)
    time.sleep(1.0)
    net.pause_controller()
    try:
        time.sleep(0.2)
        installed_before = ex.installed_groups(net)
        net.net.configLinkStatus(s_u, s_v, "down")
        pinged, streamed = ping.result(), udp.result()
        # Nothing was changed on the switches meanwhile: they repaired it alone.
        assert ex.installed_groups(net) == installed_before
        assert failover_groups(net) == ff_before
    finally:
        net.resume_controller()
    resumed = time.monotonic()

    lost_udp = streamed["end"]["sum"]["lost_packets"]
    udp_rate = UDP_MBPS * 1e6 / 8 / UDP_PAYLOAD
    outage = {"link": [u, v], "od": [src, dst], "ping_lost": len(pinged.lost),
              "ping_outage_ms": round(pinged.outage_ms, 1),
              "ping_longest_gap_ms": round(pinged.longest_gap_ms, 1),
              "udp_lost": lost_udp, "udp_outage_ms": round(lost_udp / udp_rate * 1000, 1)}
    measure("controller_stopped_outage", outage)
    print(outage)
    # Restored with the controller stopped: the last second of echo requests all answered,
    # and little lost in all.
    assert all(seq in pinged.replies for seq in range(PINGS - 100, PINGS + 1)), \
        pinged.output[-800:]
    assert pinged.outage_ms < OUTAGE_LIMIT_MS, outage
    assert outage["udp_outage_ms"] < OUTAGE_LIMIT_MS, outage

    # The controller runs again: it sees the link down and installs the proper decision.
    ex.wait_for_groups(net, ex.expected_groups(net, paths, degraded), timeout_s=20)
    measure("proper_decision_after_resume_s", round(time.monotonic() - resumed, 3))
    again = net.ping(h_src, h_dst, count=50, interval_s=0.02).result()
    assert not again.lost, again.output[-800:]

    net.net.configLinkStatus(s_u, s_v, "up")
    ex.wait_for_groups(net, ex.expected_groups(net, paths, healthy), timeout_s=20)

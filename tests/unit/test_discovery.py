"""Link discovery by LLDP, without a switch: probes out of one switch fed into another."""
from controller.discovery import Link, LinkDiscovery, lldp_frame, parse_lldp_frame


def two_switches() -> LinkDiscovery:
    discovery = LinkDiscovery(timeout_rounds=2)
    discovery.switch_up(1, {1: "00:00:00:00:01:01", 2: "00:00:00:00:01:02"})
    discovery.switch_up(2, {1: "00:00:00:00:02:01", 3: "00:00:00:00:02:03"})
    return discovery


def probe_from(discovery: LinkDiscovery, dpid: int, port: int) -> bytes:
    return next(frame for d, p, frame in discovery.probes() if (d, p) == (dpid, port))


def test_probe_round_trip_names_switch_and_port():
    frame = lldp_frame(0x1234, 7, "00:00:00:00:00:01")
    assert parse_lldp_frame(frame) == (0x1234, 7)


def test_probes_cover_every_live_port():
    assert [(d, p) for d, p, _ in two_switches().probes()] == [(1, 1), (1, 2), (2, 1), (2, 3)]


def test_link_learned_once_in_the_direction_of_the_probe():
    discovery = two_switches()
    frame = probe_from(discovery, 1, 2)
    assert discovery.lldp_received(2, 3, frame) == Link(1, 2, 2, 3)
    assert discovery.lldp_received(2, 3, frame) is None  # refresh, not new
    assert discovery.links == [Link(1, 2, 2, 3)]


def test_link_expires_after_missed_rounds_and_survives_with_probes():
    discovery = two_switches()
    forward, backward = probe_from(discovery, 1, 2), probe_from(discovery, 2, 3)
    discovery.lldp_received(2, 3, forward)
    discovery.lldp_received(1, 2, backward)
    for _ in range(3):  # three rounds: only the forward direction answers
        discovery.probes()
        discovery.lldp_received(2, 3, forward)
    assert discovery.expire() == [Link(2, 3, 1, 2)]
    assert discovery.links == [Link(1, 2, 2, 3)]


def test_a_stalled_controller_sends_no_rounds_and_loses_no_link():
    discovery = two_switches()
    discovery.lldp_received(2, 3, probe_from(discovery, 1, 2))
    # However long nothing happens, without new rounds nothing expires.
    assert discovery.expire() == [] and discovery.expire() == []
    discovery.probes()
    assert discovery.expire() == []  # one missed round is within the timeout
    discovery.probes()
    discovery.probes()
    assert discovery.expire() == [Link(1, 2, 2, 3)]


def test_port_down_and_switch_down_remove_links_at_once():
    discovery = two_switches()
    discovery.lldp_received(2, 3, probe_from(discovery, 1, 2))
    discovery.lldp_received(1, 2, probe_from(discovery, 2, 3))
    assert discovery.port_down(2, 3) == [Link(1, 2, 2, 3), Link(2, 3, 1, 2)]
    assert discovery.links == []
    assert (2, 3) not in [(d, p) for d, p, _ in discovery.probes()]
    assert discovery.port_up(2, 3, "00:00:00:00:02:03")
    assert not discovery.port_up(2, 3, "00:00:00:00:02:03")
    discovery.lldp_received(2, 3, probe_from(discovery, 1, 2))
    assert discovery.switch_down(1) == [Link(1, 2, 2, 3)]
    assert discovery.switches == [2]


def test_garbage_foreign_and_unknown_probes_are_ignored():
    discovery = two_switches()
    assert discovery.lldp_received(2, 1, b"\x00" * 10) is None
    assert discovery.lldp_received(2, 1, b"\x01\x80\xc2" + b"\xff" * 60) is None
    stranger = lldp_frame(99, 1, "00:00:00:00:09:09")
    assert discovery.lldp_received(2, 1, stranger) is None
    assert discovery.lldp_received(7, 1, probe_from(discovery, 1, 1)) is None
    assert discovery.links == []

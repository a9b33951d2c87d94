"""The controller's network view without a switch: links, hosts, rates and the TE state."""
from __future__ import annotations

import pytest

from controller.discovery import LinkDiscovery, lldp_frame
from controller.network import NetworkView, RateMeter
from topologies.catalog import load_topology


def connect(view: NetworkView, discovery: LinkDiscovery, links, ports_per_switch=4) -> None:
    """Switches up and the given (src dpid, src port, dst dpid, dst port) links seen by LLDP."""
    dpids = sorted({link[0] for link in links} | {link[2] for link in links})
    for dpid in dpids:
        ports = {p: f"00:00:00:00:{dpid:02x}:{p:02x}" for p in range(1, ports_per_switch + 1)}
        discovery.switch_up(dpid, ports)
        view.switch_added(dpid, {p: 100.0 for p in ports})
    for src, src_port, dst, dst_port in links:
        frame = lldp_frame(src, src_port, f"00:00:00:00:{src:02x}:{src_port:02x}")
        discovery.lldp_received(dst, dst_port, frame)


LINEAR3 = [(1, 2, 2, 2), (2, 2, 1, 2), (2, 3, 3, 2), (3, 2, 2, 3)]


def linear_view(scale: float = 1.0) -> tuple[NetworkView, LinkDiscovery]:
    discovery = LinkDiscovery(timeout_rounds=3)
    view = NetworkView(load_topology("linear:n=3"), discovery, capacity_scale=scale)
    connect(view, discovery, LINEAR3)
    view.links_changed()
    return view, discovery


def test_rates_come_from_counter_differences_over_switch_time():
    meter = RateMeter()
    meter.sample("a", 0, at_s=10.0)
    assert "a" not in meter.rates
    meter.sample("a", 1_250_000, at_s=12.0)  # 10 Mbit in 2 s
    assert meter.rates["a"] == pytest.approx(5.0)
    meter.sample("a", 100, at_s=1.0)  # rule replaced: counter and duration start over
    assert meter.rates["a"] == pytest.approx(5.0)
    meter.sample("a", 100 + 250_000, at_s=2.0)
    assert meter.rates["a"] == pytest.approx(2.0)


def test_topology_file_names_capacities_and_down_links():
    view, discovery = linear_view(scale=10.0)
    assert view.version == 1 and view.down_links() == set()
    assert set(view.state.capacities) == {1000.0}  # the file's units, whatever the scale
    assert view.link_ports[("s1", "s2")] == (2, 2)
    discovery.port_down(2, 3)
    view.links_changed()
    assert view.down_links() == {("s2", "s3"), ("s3", "s2")}
    assert view.link_ports[("s2", "s3")] == (3, 2)  # remembered: the link may come back


def test_hosts_are_learned_on_edge_ports_only():
    view, _ = linear_view()
    assert view.learn_host("00:00:00:00:01:01", "10.0.1.1", 1, 1) is not None
    assert view.learn_host("00:00:00:00:01:01", "10.0.1.1", 1, 1) is None  # nothing new
    assert view.learn_host("00:00:00:00:09:09", "10.0.9.9", 2, 2) is None  # a switch port
    moved = view.learn_host("00:00:00:00:01:01", "10.0.1.1", 1, 4)
    assert moved is not None and view.host_by_ip("10.0.1.1").port == 4
    assert (1, 2) not in view.edge_ports() and (1, 1) in view.edge_ports()


def test_loads_and_od_matrix_from_counters():
    view, _ = linear_view()
    view.learn_host("00:00:00:00:03:01", "10.0.3.1", 3, 1)
    view.learn_host("00:00:00:00:01:01", "10.0.1.1", 1, 1)
    for at_s, bytes_ in ((0.0, 0), (2.0, 2_500_000)):  # 10 Mbit/s
        view.port_stats(1, [(2, bytes_, at_s)])
        view.flow_stats(1, [("00:00:00:00:03:01", bytes_, at_s),
                            ("00:00:00:00:01:01", 5 * bytes_, at_s)])  # local: not an OD
    view.record_interval(now=2.0)
    state = view.state
    matrix = state.last_matrix
    nodes = list(state.path_set.nodes)
    assert matrix[nodes.index("s1"), nodes.index("s3")] == pytest.approx(10.0)  # scale 1
    assert matrix.sum() == pytest.approx(10.0)
    loads = dict(zip(state.path_set.edges, state.loads_mbps))
    assert loads[("s1", "s2")] == pytest.approx(10.0) and loads[("s2", "s1")] == 0.0
    assert state.updated_at == 2.0


def test_measured_rates_are_converted_to_the_topology_units():
    view, _ = linear_view(scale=1000.0)
    view.learn_host("00:00:00:00:03:01", "10.0.3.1", 3, 1)
    for at_s, bytes_ in ((0.0, 0), (2.0, 2_500_000)):  # 10 Mbit/s on the emulated wire
        view.port_stats(1, [(2, bytes_, at_s)])
        view.flow_stats(1, [("00:00:00:00:03:01", bytes_, at_s)])
    view.record_interval(now=2.0)
    assert view.state.last_matrix.sum() == pytest.approx(10_000.0)
    assert view.state.mlu == pytest.approx(10.0)  # 10 Gbit/s on a 1 Gbit/s link


def test_without_a_topology_file_the_network_is_what_discovery_found():
    discovery = LinkDiscovery(timeout_rounds=3)
    view = NetworkView(None, discovery)
    discovery.switch_up(3, {1: "00:00:00:00:03:01"})
    view.switch_added(3, {})  # no link yet: not routable, and no error
    connect(view, discovery, LINEAR3[:2])
    assert view.links_changed() and view.version == 1
    assert sorted(view.state.path_set.nodes) == ["s1", "s2"]
    assert set(view.state.capacities) == {100.0}  # from the port speeds
    connect(view, discovery, LINEAR3)
    assert view.links_changed() and view.version == 2
    assert view.state.path_set.n_ods == 6
    assert not view.links_changed()  # nothing new: same version, same labels

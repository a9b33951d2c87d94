"""The controller's live view of the network, as plain objects fed by the app's events.

``NetworkView`` joins what LLDP discovered, the topology file (when given), the hosts learned
from packet-ins and the rates measured from OpenFlow counters, and exposes them as the TE
core's ``NetworkState`` and as the pipeline's ``Fabric``. No os-ken here.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from controller.discovery import Link as PortLink
from controller.discovery import LinkDiscovery
from controller.pipeline import Fabric, Host
from sim.paths import Link, PathSet
from sim.state import NetworkState

LOG = logging.getLogger(__name__)


@dataclass
class _Sample:
    value: float
    at_s: float


class RateMeter:
    """Rates (Mbit/s) from monotonically increasing byte counters, keyed by anything.

    Times come from the switch (port or flow duration), not from the controller's clock, so
    a late reply does not distort the rate. A counter that goes backwards (rule replaced,
    switch restarted) starts over.
    """

    def __init__(self) -> None:
        self._last: dict[object, _Sample] = {}
        self.rates: dict[Any, float] = {}  # keys: (dpid, port) or (dpid, mac) tuples

    def sample(self, key: object, byte_count: float, at_s: float) -> None:
        previous = self._last.get(key)
        self._last[key] = _Sample(byte_count, at_s)
        if previous is None or byte_count < previous.value or at_s <= previous.at_s:
            return
        self.rates[key] = (byte_count - previous.value) * 8 / (at_s - previous.at_s) / 1e6

    def forget(self, predicate) -> None:
        for key in [key for key in self._last if predicate(key)]:
            self._last.pop(key, None)
            self.rates.pop(key, None)


class NetworkView:
    """Switches, links, hosts and measured rates; the source of the state the policies see.

    With a topology file (``expected``), its nodes, links and capacities define the network and
    discovery says which links are up and on which ports. Without one, the network is what
    discovery found: nodes are named ``s<dpid>``, capacities come from port speeds or
    ``default_capacity_mbps``, and the path set is rebuilt when a new link appears.

    The state is kept in the topology's units: measured rates are multiplied by
    ``capacity_scale`` (Mininet's ``--scale``: an emulated 9.92 Mbit/s link is the 9,920 Mbit/s
    link of the file). So a model trained on the real network's capacities and matrices fits
    its emulation unchanged; only the REST views convert back to what the switches carry.
    """

    def __init__(self, expected: nx.DiGraph | None, discovery: LinkDiscovery, *,
                 paths_k: int = 4, path_method: str = "hops", capacity_scale: float = 1.0,
                 default_capacity_mbps: float = 1000.0, history_len: int = 12,
                 local_repair: bool = True) -> None:
        self.expected = expected
        self.local_repair = local_repair
        self.discovery = discovery
        self.paths_k, self.path_method = paths_k, path_method
        self.capacity_scale = capacity_scale
        self.default_capacity_mbps = default_capacity_mbps
        self.history_len = history_len
        self.hosts: dict[str, Host] = {}
        self.port_speed_mbps: dict[tuple[int, int], float] = {}
        self.link_ports: dict[Link, tuple[int, int]] = {}
        self.port_rates = RateMeter()
        self.flow_rates = RateMeter()
        self.version = 0
        self.state: NetworkState | None = None
        self.graph: nx.DiGraph | None = None
        self.dpid_of: dict[object, int] = {}
        if expected is not None:
            self.dpid_of = {node: int(data["dpid"]) for node, data in expected.nodes(data=True)}
            self._rebuild(self._expected_graph())

    # -- identity ----------------------------------------------------------------------------
    @property
    def node_of(self) -> dict[int, object]:
        return {dpid: node for node, dpid in self.dpid_of.items()}

    def name(self, dpid: int) -> str:
        return str(self.node_of.get(dpid, f"s{dpid}"))

    # -- topology ----------------------------------------------------------------------------
    def _expected_graph(self) -> nx.DiGraph:
        assert self.expected is not None, "called only with a topology file"
        return self.expected.copy()

    def _discovered_graph(self) -> nx.DiGraph:
        graph = nx.DiGraph(name="discovered")
        for dpid in sorted(self.dpid_of.values()):
            graph.add_node(f"s{dpid}", dpid=dpid, hosts=True)
        for (u, v), (port, _) in sorted(self.link_ports.items()):
            speed = self.port_speed_mbps.get((self.dpid_of[u], port)) or self.default_capacity_mbps
            graph.add_edge(u, v, capacity_mbps=speed * self.capacity_scale)
        # Paths exist only within a strongly connected part; route the largest one until
        # discovery joins the rest.
        largest = max(nx.strongly_connected_components(graph),
                      key=lambda part: (len(part), -min(graph.nodes[n]["dpid"] for n in part)))
        return graph.subgraph(sorted(largest, key=lambda n: graph.nodes[n]["dpid"])).copy()

    def _rebuild(self, graph: nx.DiGraph) -> None:
        """A new topology version: new path set (new labels), empty history."""
        self.version += 1
        self.graph = graph
        path_set = PathSet.from_graph(graph, k=self.paths_k, method=self.path_method)
        self.state = NetworkState(graph.copy(), path_set, self.history_len)
        LOG.info("topology version %d: %d switches, %d links, %d paths", self.version,
                 graph.number_of_nodes(), graph.number_of_edges(), path_set.n_paths)
        self._refresh_link_state()

    def links_changed(self) -> bool:
        """Take discovery's current links into account; True when the path set changed."""
        for link in self.discovery.links:
            self._learn_ports(link)
        known = set(self.graph.edges) if self.graph is not None else set()
        if self.expected is None and set(self.link_ports) - known:
            graph = self._discovered_graph()  # a new link may join the routed part
            if graph.number_of_nodes() >= 2 and set(graph.edges) != known:
                self._rebuild(graph)
                return True
        self._refresh_link_state()
        return False

    def _learn_ports(self, link: PortLink) -> None:
        if self.expected is None:
            self.dpid_of.setdefault(f"s{link.src}", link.src)
            self.dpid_of.setdefault(f"s{link.dst}", link.dst)
        node_of = self.node_of
        u, v = node_of.get(link.src), node_of.get(link.dst)
        if u is None or v is None:
            return  # a switch the topology file does not know: reported, not used
        if self.expected is not None and not self.expected.has_edge(u, v):
            return
        self.link_ports[u, v] = (link.src_port, link.dst_port)

    def switch_added(self, dpid: int, port_speeds_mbps: dict[int, float]) -> None:
        for port, speed in port_speeds_mbps.items():
            self.port_speed_mbps[dpid, port] = speed
        if self.expected is None:
            self.dpid_of.setdefault(f"s{dpid}", dpid)

    def up_links(self) -> set[Link]:
        node_of = self.node_of
        return {(node_of[link.src], node_of[link.dst]) for link in self.discovery.links
                if link.src in node_of and link.dst in node_of}

    def down_links(self) -> set[Link]:
        if self.state is None:
            return set()
        return set(self.state.path_set.edges) - self.up_links()

    def _refresh_link_state(self) -> None:
        if self.state is None:
            return
        down = self.down_links()
        for u, v in self.state.path_set.edges:
            self.state.set_link_up(u, v, (u, v) not in down)

    # -- hosts -------------------------------------------------------------------------------
    def is_edge_port(self, dpid: int, port: int) -> bool:
        """Not an inter-switch port: a host may live behind it."""
        node = self.node_of.get(dpid)
        switch_ports = {ports[0] for (u, _), ports in self.link_ports.items() if u == node}
        switch_ports |= {link.src_port for link in self.discovery.links if link.src == dpid}
        return port not in switch_ports

    def learn_host(self, mac: str, ip: str, dpid: int, port: int) -> Host | None:
        """Record a host; returns it when it is new or moved, else None."""
        if not self.is_edge_port(dpid, port):
            return None
        host = Host(mac, ip, dpid, port)
        if self.hosts.get(mac) == host:
            return None
        self.hosts[mac] = host
        return host

    def host_by_ip(self, ip: str) -> Host | None:
        if not ip:
            return None
        return next((host for host in self.hosts.values() if host.ip == ip), None)

    def edge_ports(self) -> list[tuple[int, int]]:
        return [(dpid, port) for dpid in self.discovery.switches
                for port in sorted(self.discovery.ports(dpid)) if self.is_edge_port(dpid, port)]

    # -- pipeline ----------------------------------------------------------------------------
    def fabric(self) -> Fabric | None:
        if self.state is None:
            return None
        return Fabric(self.state.path_set, self.dpid_of, dict(self.link_ports), dict(self.hosts),
                      self.local_repair)

    # -- statistics --------------------------------------------------------------------------
    def port_stats(self, dpid: int, samples: Iterable[tuple[int, float, float]]) -> None:
        """(port, tx_bytes, duration_s) per port of one switch."""
        for port, tx_bytes, at_s in samples:
            self.port_rates.sample((dpid, port), tx_bytes, at_s)

    def flow_stats(self, dpid: int, samples: Iterable[tuple[str, float, float]]) -> None:
        """(destination MAC, byte_count, duration_s) of one switch's ingress rules."""
        for mac, byte_count, at_s in samples:
            self.flow_rates.sample((dpid, mac), byte_count, at_s)

    def link_loads(self) -> np.ndarray:
        """Mbit/s per link of the path set (topology units), from the port counters of each
        link's sender."""
        assert self.state is not None, "called only once there is a topology"
        path_set = self.state.path_set
        loads = np.zeros(path_set.n_links)
        for i, edge in enumerate(path_set.edges):
            ports = self.link_ports.get(edge)
            if ports is not None:
                loads[i] = self.port_rates.rates.get((self.dpid_of[edge[0]], ports[0]), 0.0)
        return loads * self.capacity_scale

    def od_matrix(self) -> np.ndarray:
        """Mbit/s from each switch to each switch (topology units), from the ingress rules'
        byte counters."""
        assert self.state is not None, "called only once there is a topology"
        path_set = self.state.path_set
        index = {node: i for i, node in enumerate(path_set.nodes)}
        node_of = self.node_of
        matrix = np.zeros((path_set.n_nodes, path_set.n_nodes))
        for (dpid, mac), rate in self.flow_rates.rates.items():
            host = self.hosts.get(mac)
            if host is None or host.dpid == dpid:
                continue
            src, dst = index.get(node_of.get(dpid)), index.get(node_of.get(host.dpid))
            if src is not None and dst is not None:
                matrix[src, dst] += rate
        return matrix * self.capacity_scale

    def record_interval(self, now: float) -> np.ndarray | None:
        """Close a statistics interval: current loads and the OD matrix into the state; the
        matrix, or None when there is none yet."""
        assert self.state is not None, "called only once there is a topology"
        self.state.set_loads(self.link_loads(), at=now)
        if not self.flow_rates.rates:  # before two samples there is no rate: no matrix
            return None
        matrix = self.od_matrix()
        self.state.push_matrix(matrix)
        return matrix

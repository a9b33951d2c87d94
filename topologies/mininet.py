"""Mininet topologies from catalog graphs, with names, addresses and ports fixed in advance.

Everything Mininet would otherwise choose is computed here by pure functions, so that the
controller, the traffic generators and the tests agree on it without starting Mininet:

- switch ``s{dpid}`` (``dpid`` passed explicitly as 16 hex digits);
- on every node whose ``hosts`` is true, ``hosts_per_switch`` hosts: ``h{dpid}`` when there
  is one, else ``h{dpid}x{i}`` (i from 1), with IP ``10.{dpid//256}.{dpid%256}.{i}/8`` and MAC
  ``00:00:00:{dpid//256:02x}:{dpid%256:02x}:{i:02x}``;
- switch ports: hosts first (port i for host i), then one port per physical link in the
  graph's edge order; host side is always port 0 (``eth0``);
- inter-switch links shaped by HTB (``TCLink``, ``bw = capacity_mbps / scale``); host links
  plain and unshaped, so that only the network's links are bottlenecks.

Mininet caps ``bw`` at 1000 Mbit/s, hence ``scale`` (default 1000: a 10 Gbit/s link becomes
10 Mbit/s, and a traffic matrix is divided by the same scale).

Also usable by Mininet itself, from the project's virtualenv (the system ``mn`` lacks
networkx)::

    sudo .venv/bin/mn --custom topologies/mininet.py --topo abilene
    sudo .venv/bin/mn --custom topologies/mininet.py --topo fat-tree,4,scale=100
    sudo .venv/bin/mn --custom topologies/mininet.py --topo file,path/to/net.graphml

Positional parameters follow the built-in's parameters (``builtin_parameters``); keywords
``hosts_per_switch``, ``scale``, ``switch_prefix`` and ``host_prefix`` go to the Topo.
``mn`` exec()s this file without ``__file__`` and copies every top-level name into its own
globals: imports are absolute and top-level names avoid ``mn``'s.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from topologies.catalog import builtin_names, builtin_parameters, load_topology, physical_links
    from topologies.loaders import TopologyError
except ImportError:  # exec()ed by `mn --custom` with the project not installed: find it
    frame = inspect.currentframe()  # CPython: never None
    assert frame is not None
    sys.path.insert(0, str(Path(frame.f_code.co_filename).resolve().parents[1]))
    from topologies.catalog import builtin_names, builtin_parameters, load_topology, physical_links
    from topologies.loaders import TopologyError

import networkx as nx
from mininet.link import Link, TCIntf, TCLink
from mininet.topo import Topo

MAX_BW_MBPS = 1000.0
"""Mininet's TCIntf refuses a larger ``bw``."""


@dataclass(frozen=True)
class HostSpec:
    """One emulated host: its name, its switch's dpid, addresses and attachment."""

    name: str
    dpid: int
    ip: str  # with prefix length, e.g. "10.0.1.1/8"
    mac: str
    switch: str
    port: int  # on the switch
    index: int  # i, from 1


@dataclass(frozen=True)
class LinkSpec:
    """One inter-switch link: Mininet names and ports, and the shaping of each direction."""

    node1: str
    node2: str
    port1: int
    port2: int
    bw1: float  # Mbit/s leaving node1 (capacity of graph edge u -> v, scaled)
    bw2: float  # Mbit/s leaving node2
    edge: tuple[str, str]  # the graph's (u, v)


def switch_name(dpid: int, prefix: str = "s") -> str:
    return f"{prefix}{dpid}"


def host_name(dpid: int, index: int = 1, hosts_per_switch: int = 1, prefix: str = "h") -> str:
    return f"{prefix}{dpid}" if hosts_per_switch == 1 else f"{prefix}{dpid}x{index}"


def host_ip(dpid: int, index: int = 1) -> str:
    """``10.{dpid//256}.{dpid%256}.{index}/8``; dpids above 65535 do not fit this plan."""
    if not 0 < dpid < 65536 or not 0 < index < 255:
        raise TopologyError(f"no host address for dpid {dpid}, host {index}: the plan "
                            "10.{dpid//256}.{dpid%256}.{i} needs dpid < 65536 and i < 255")
    return f"10.{dpid // 256}.{dpid % 256}.{index}/8"


def host_mac(dpid: int, index: int = 1) -> str:
    host_ip(dpid, index)  # same limits
    return f"00:00:00:{dpid // 256:02x}:{dpid % 256:02x}:{index:02x}"


def host_plan(graph: nx.DiGraph, hosts_per_switch: int = 1, switch_prefix: str = "s",
              host_prefix: str = "h") -> list[HostSpec]:
    """Every host of the emulation, in graph order; ports 1..hosts_per_switch."""
    if hosts_per_switch < 0:
        raise TopologyError(f"hosts_per_switch must be >= 0, got {hosts_per_switch}")
    return [HostSpec(host_name(dpid, i, hosts_per_switch, host_prefix), dpid,
                     host_ip(dpid, i), host_mac(dpid, i), switch_name(dpid, switch_prefix),
                     i, i)
            for _, dpid, has_hosts in _switches(graph) if has_hosts
            for i in range(1, hosts_per_switch + 1)]


def link_plan(graph: nx.DiGraph, hosts_per_switch: int = 1, scale: float = 1000.0,
              switch_prefix: str = "s") -> list[LinkSpec]:
    """One shaped link per physical link, in graph order, ports after the host ports.

    Raises TopologyError when a scaled capacity exceeds Mininet's 1000 Mbit/s.
    """
    if not scale > 0:
        raise TopologyError(f"scale must be positive, got {scale}")
    next_port = {node: (hosts_per_switch if has else 0) + 1
                 for node, _, has in _switches(graph)}
    links = []
    for u, v in physical_links(graph):
        bw1, bw2 = (_scaled(graph, a, b, scale) for a, b in ((u, v), (v, u)))
        dpid_u, dpid_v = graph.nodes[u]["dpid"], graph.nodes[v]["dpid"]
        links.append(LinkSpec(switch_name(dpid_u, switch_prefix),
                              switch_name(dpid_v, switch_prefix),
                              next_port[u], next_port[v], bw1, bw2, (u, v)))
        next_port[u] += 1
        next_port[v] += 1
    return links


def _switches(graph: nx.DiGraph) -> list[tuple[str, int, bool]]:
    return [(node, attrs["dpid"], bool(attrs.get("hosts", True)))
            for node, attrs in graph.nodes(data=True)]


def _scaled(graph: nx.DiGraph, u: str, v: str, scale: float) -> float:
    capacity = graph.edges[u, v]["capacity_mbps"]
    bw = capacity / scale
    if bw > MAX_BW_MBPS:
        raise TopologyError(
            f"{graph.graph.get('name', 'topology')}: link {u} -> {v}: {capacity:g} Mbit/s / "
            f"scale {scale:g} = {bw:g} Mbit/s exceeds Mininet's {MAX_BW_MBPS:g} Mbit/s limit; "
            f"raise --scale to at least {capacity / MAX_BW_MBPS:g}")
    return bw


class RyuteTopo(Topo):
    """A Mininet Topo realising ``host_plan`` and ``link_plan`` for a catalog graph.

    ``RyuteTopo(graph, hosts_per_switch=1, scale=1000.0, switch_prefix="s", host_prefix="h")``.
    After construction: ``graph``, ``host_specs``, ``link_specs`` and ``port_of[(a, b)]``,
    the port on Mininet node a that leads to Mininet node b.
    """

    def build(self, graph: nx.DiGraph, hosts_per_switch: int = 1, scale: float = 1000.0,
              switch_prefix: str = "s", host_prefix: str = "h") -> None:
        self.graph = graph
        self.scale = scale
        self.host_specs = host_plan(graph, hosts_per_switch, switch_prefix, host_prefix)
        self.link_specs = link_plan(graph, hosts_per_switch, scale, switch_prefix)
        self.port_of: dict[tuple[str, str], int] = {}
        for _, dpid, _ in _switches(graph):
            self.addSwitch(switch_name(dpid, switch_prefix), dpid=f"{dpid:016x}")
        for host in self.host_specs:
            self.addHost(host.name, ip=host.ip, mac=host.mac)
            self._link(host.name, host.switch, 0, host.port)
        for link in self.link_specs:
            self._link(link.node1, link.node2, link.port1, link.port2, **_shaping(link))

    def _link(self, node1: str, node2: str, port1: int, port2: int, **opts: Any) -> None:
        self.addLink(node1, node2, port1=port1, port2=port2, **opts)
        self.port_of[node1, node2] = port1
        self.port_of[node2, node1] = port2


def _shaping(link: LinkSpec) -> dict[str, Any]:
    """``TCLink`` with one ``bw``; asymmetric capacities need one TCIntf per direction."""
    if link.bw1 == link.bw2:
        return {"cls": TCLink, "bw": link.bw1}
    return {"cls": Link, "intf": TCIntf, "params1": {"bw": link.bw1},
            "params2": {"bw": link.bw2}}


TOPO_OPTIONS = ("hosts_per_switch", "scale", "switch_prefix", "host_prefix")


def _mn_constructor(name: str):
    """``mn --topo name,arg1,...,key=value``: positional args in the built-in's order."""
    def construct(*args: Any, **kwargs: Any) -> RyuteTopo:
        names = list(builtin_parameters(name))
        if len(args) > len(names):
            raise TopologyError(f"{name}: takes at most {len(names)} positional parameter(s) "
                                f"({', '.join(names) or 'none'}), got {len(args)}")
        options = {key: kwargs.pop(key) for key in TOPO_OPTIONS if key in kwargs}
        graph = load_topology(name, **dict(zip(names, args)), **kwargs)
        return RyuteTopo(graph, **options)
    return construct


def _mn_file(path: str, **kwargs: Any) -> RyuteTopo:
    """``mn --topo file,PATH[,key=value...]``."""
    options = {key: kwargs.pop(key) for key in TOPO_OPTIONS if key in kwargs}
    return RyuteTopo(load_topology(path, **kwargs), **options)


topos = {name: _mn_constructor(name) for name in builtin_names()}
topos["file"] = _mn_file

"""The Mininet topology, built without starting Mininet (no root, no switches)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from mininet.link import Link, TCIntf, TCLink

from topologies.catalog import TopologyError, load_topology
from topologies.mininet import (
    RyuteTopo,
    host_ip,
    host_mac,
    host_name,
    host_plan,
    link_plan,
    switch_name,
)

MODULE = Path(__file__).resolve().parents[2] / "topologies" / "mininet.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_naming_and_addressing_helpers():
    assert switch_name(7) == "s7" and switch_name(7, "sw") == "sw7"
    assert host_name(7) == "h7" and host_name(7, 2, hosts_per_switch=3) == "h7x2"
    assert host_ip(7) == "10.0.7.1/8" and host_ip(300, 2) == "10.1.44.2/8"
    assert host_mac(7) == "00:00:00:00:07:01" and host_mac(300, 2) == "00:00:00:01:2c:02"
    with pytest.raises(TopologyError, match="dpid < 65536"):
        host_ip(70000)


def test_host_plan_only_on_nodes_with_hosts():
    plan = host_plan(load_topology("fat-tree"))
    assert [h.dpid for h in plan] == list(range(13, 21))  # the 8 edge switches
    assert plan[0].name == "h13" and plan[0].switch == "s13" and plan[0].port == 1
    two = host_plan(load_topology("linear:n=2"), hosts_per_switch=2)
    assert [(h.name, h.ip, h.port) for h in two] == [
        ("h1x1", "10.0.1.1/8", 1), ("h1x2", "10.0.1.2/8", 2),
        ("h2x1", "10.0.2.1/8", 1), ("h2x2", "10.0.2.2/8", 2)]
    assert host_plan(load_topology("linear"), hosts_per_switch=0) == []


def test_abilene_topo_switches_hosts_and_shaping():
    graph = load_topology("abilene")
    topo = RyuteTopo(graph)
    assert len(topo.switches()) == 12 and len(topo.hosts()) == 12
    assert topo.nodeInfo("s12")["dpid"] == "000000000000000c"
    assert topo.nodeInfo("h3") == {"ip": "10.0.3.1/8", "mac": "00:00:00:00:03:01"}
    links = topo.links(withInfo=True)
    shaped = [info for _, _, info in links if info.get("cls") is TCLink]
    plain = [info for _, _, info in links if "cls" not in info]
    assert len(shaped) == 15 and len(plain) == 12
    assert Counter(info["bw"] for info in shaped) == {9.92: 14, 2.48: 1}
    assert all("bw" not in info for info in plain)


def test_ports_are_deterministic_hosts_first():
    graph = load_topology("abilene")
    topo = RyuteTopo(graph)
    assert topo.port_of["s1", "h1"] == 1 and topo.port_of["h1", "s1"] == 0
    for switch in topo.switches():
        ports = sorted(port for (a, _), port in topo.port_of.items() if a == switch)
        assert ports == list(range(1, len(ports) + 1))
    # the first physical link is ATLAM5 (s1) - ATLAng (s2): port 2 on both
    assert topo.port_of["s1", "s2"] == 2 and topo.port_of["s2", "s1"] == 2
    assert topo.port("s1", "s2") == (2, 2)  # Mininet's own bookkeeping agrees
    for spec in topo.link_specs:
        u, v = spec.edge
        assert (spec.node1, spec.node2) == (f"s{graph.nodes[u]['dpid']}",
                                            f"s{graph.nodes[v]['dpid']}")
    again = RyuteTopo(load_topology("abilene"))
    assert again.port_of == topo.port_of


def test_ports_without_hosts_start_at_one_and_hosts_per_switch_shifts_them():
    assert RyuteTopo(load_topology("linear:n=3"), hosts_per_switch=0).port_of == {
        ("s1", "s2"): 1, ("s2", "s1"): 1, ("s2", "s3"): 2, ("s3", "s2"): 1}
    topo = RyuteTopo(load_topology("linear:n=3"), hosts_per_switch=3)
    assert len(topo.hosts()) == 9
    assert topo.port_of["s2", "h2x3"] == 3 and topo.port_of["s2", "s3"] == 5


def test_fat_tree_topo_counts():
    topo = RyuteTopo(load_topology("fat-tree:k=4"), hosts_per_switch=2, scale=10)
    assert len(topo.switches()) == 20 and len(topo.hosts()) == 16
    assert len(topo.links()) == 32 + 16
    assert {spec.bw1 for spec in topo.link_specs} == {100.0}


def test_scaled_capacity_above_1000_is_refused():
    with pytest.raises(TopologyError, match=r"exceeds Mininet's 1000 Mbit/s limit; raise "
                                            r"--scale to at least 9.92"):
        RyuteTopo(load_topology("abilene"), scale=9)
    assert RyuteTopo(load_topology("abilene"), scale=10).link_specs[0].bw1 == 992.0
    with pytest.raises(TopologyError, match="scale must be positive"):
        link_plan(load_topology("ring"), scale=0)


def test_asymmetric_capacities_shape_each_direction(tmp_path):
    path = tmp_path / "asym.json"
    path.write_text(json.dumps({"nodes": ["A", "B"], "links": [
        {"src": "A", "dst": "B", "capacity_mbps": 100}, {"src": "B", "dst": "A",
                                                          "capacity_mbps": 50}]}))
    topo = RyuteTopo(load_topology(str(path)), scale=1)
    info = topo.linkInfo("s1", "s2")
    assert info["cls"] is Link and info["intf"] is TCIntf
    assert (info["params1"], info["params2"]) == ({"bw": 100.0}, {"bw": 50.0})


def test_prefixes():
    topo = RyuteTopo(load_topology("linear:n=2"), switch_prefix="sw", host_prefix="x")
    assert topo.switches() == ["sw1", "sw2"] and topo.hosts() == ["x1", "x2"]


def test_mn_custom_file_as_mininet_execs_it():
    """``mn --custom`` exec()s the file without ``__file__`` and reads ``topos``."""
    namespace: dict = {}
    exec(compile(MODULE.read_text(), str(MODULE), "exec"), namespace, namespace)  # noqa: S102
    topos = namespace["topos"]
    assert {"abilene", "geant", "nsfnet", "fat-tree", "linear", "ring", "file"} <= set(topos)
    assert len(topos["fat-tree"](4).switches()) == 20  # mn --topo fat-tree,4
    assert len(topos["ring"](5, 100, scale=1).switches()) == 5  # ring,5,100,scale=1
    assert topos["linear"](3, hosts_per_switch=2).hosts()[0] == "h1x1"
    assert len(topos["file"](str(FIXTURES / "tiny.json")).hosts()) == 2  # B has no hosts
    with pytest.raises(TopologyError, match="at most 2 positional"):
        topos["ring"](5, 100, 7)

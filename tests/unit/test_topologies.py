"""The topology catalog: built-ins, file formats, validation, the zoo, and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from lab.cli import main
from topologies.catalog import (
    TopologyError,
    builtin_names,
    builtin_parameters,
    fat_tree,
    load_topology,
    physical_links,
    topology_summary,
)
from topologies.traffic import shared_data_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_TOPOLOGIES = shared_data_dir() / "topologies"


def check_shape(graph: nx.DiGraph) -> None:
    """What every consumer of the catalog relies on."""
    assert graph.graph["name"]
    dpids = [d for _, d in graph.nodes(data="dpid")]
    assert all(isinstance(d, int) and d > 0 for d in dpids)
    assert len(set(dpids)) == len(dpids)
    assert all(isinstance(h, bool) for _, h in graph.nodes(data="hosts"))
    for u, v, capacity in graph.edges(data="capacity_mbps"):
        assert isinstance(capacity, float) and capacity > 0
        assert graph.has_edge(v, u), f"{u} -> {v} has no reverse"
        assert u != v
    assert nx.is_weakly_connected(graph)


# -- built-ins -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, nodes, directed_links", [
    ("abilene", 12, 30), ("geant", 22, 72), ("nsfnet", 14, 42),
    ("fat-tree", 20, 64), ("fat-tree:k=6", 45, 216), ("fat-tree:k=2", 5, 8),
    ("linear", 4, 6), ("ring", 6, 12), ("ring:n=8", 8, 16),
])
def test_builtins_have_the_documented_size(spec, nodes, directed_links):
    graph = load_topology(spec)
    check_shape(graph)
    assert (graph.number_of_nodes(), graph.number_of_edges()) == (nodes, directed_links)
    assert [d for _, d in graph.nodes(data="dpid")] == list(range(1, nodes + 1))


def test_builtin_names_and_parameters():
    assert builtin_names() == ["abilene", "geant", "nsfnet", "fat-tree", "linear", "ring", "wan"]
    assert builtin_parameters("fat-tree") == {"k": 4, "capacity_mbps": 1000.0}
    assert builtin_parameters("abilene") == {}
    with pytest.raises(TopologyError, match="not a built-in"):
        builtin_parameters("nope")


@pytest.mark.parametrize("name", ["abilene", "geant"])
def test_builtin_facts_match_the_shared_files(name):
    path = SHARED_TOPOLOGIES / f"{name}.json"
    if not path.exists():
        pytest.skip(f"shared data absent: {path} (set RYUTE_DATA)")
    facts = json.loads(path.read_text())
    graph = load_topology(name)
    assert list(graph.nodes) == facts["nodes"]
    assert {(link["src"], link["dst"]): link["capacity_mbps"] for link in facts["links"]} == \
        {(u, v): c for u, v, c in graph.edges(data="capacity_mbps")}
    assert all(tuple(facts["coordinates_lon_lat"][n]) == graph.nodes[n]["pos"]
               for n in graph)


def test_fat_tree_structure():
    graph = fat_tree(4)
    kinds = {prefix: [n for n in graph if n[0] == prefix] for prefix in "cae"}
    assert [len(kinds[p]) for p in "cae"] == [4, 8, 8]
    assert [n for n, h in graph.nodes(data="hosts") if h] == kinds["e"]
    assert all(graph.out_degree(n) == 4 for n in kinds["a"])  # 2 edge + 2 core
    assert all(graph.out_degree(n) == 4 for n in kinds["c"])  # one per pod
    assert all(graph.out_degree(n) == 2 for n in kinds["e"])
    assert all(not graph.has_edge(e, c) for e in kinds["e"] for c in kinds["c"])


def test_parameters_from_string_and_keywords():
    assert load_topology("ring:n=8").number_of_nodes() == 8
    assert load_topology("ring", n=5).number_of_nodes() == 5
    assert load_topology("ring:n=8", n=3).number_of_nodes() == 3  # keywords win
    graph = load_topology("linear:n=3,capacity_mbps=250")
    assert {c for _, _, c in graph.edges(data="capacity_mbps")} == {250.0}
    nsf = load_topology("nsfnet", capacity_mbps=40)
    assert {c for _, _, c in nsf.edges(data="capacity_mbps")} == {40.0}
    assert {c for _, _, c in load_topology("nsfnet").edges(data="capacity_mbps")} == {10000.0}


@pytest.mark.parametrize("spec, message", [
    ("fat-tree:k=3", "fat-tree: k must be an even integer"),
    ("fat-tree:k=4.5", "fat-tree: parameter k must be int"),
    ("ring:n=2", "ring: n must be >= 3"),
    ("linear:n=1", "linear: n must be >= 2"),
    ("linear:m=3", r"linear: unknown parameter\(s\) m \(accepted: n, capacity_mbps\)"),
    ("abilene:k=3", r"abilene: unknown parameter\(s\) k \(accepted: none\)"),
    ("ring:capacity_mbps=0", "capacity_mbps must be positive"),
    ("ring:capacity_mbps=fast", "capacity_mbps must be float"),
    ("ring:n", "parameters must look like key=value"),
    ("atlantis", "atlantis: unknown topology; built-ins are abilene"),
    ("missing/file.json", "missing/file.json: no such file"),
])
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(TopologyError, match=message):
        load_topology(spec)


# -- file formats --------------------------------------------------------------------------

def test_json_nodes_dpids_reverse_links_and_parallel_links():
    graph = load_topology(str(FIXTURES / "tiny.json"))
    check_shape(graph)
    assert graph.graph["name"] == "tiny"
    assert list(graph.nodes) == ["A", "B", "C"]
    assert [graph.nodes[n]["dpid"] for n in graph] == [1, 42, 3]  # explicit, else position+1
    assert graph.nodes["B"]["hosts"] is False and graph.nodes["A"]["hosts"] is True
    assert graph.nodes["A"]["pos"] == (13.4, 52.5) and "pos" not in graph.nodes["B"]
    assert graph.edges["A", "C"] == {"capacity_mbps": 10.0}  # reverse of C -> A, added
    # two parallel B -> C links: capacities add up, the lower-weight member's attributes stay
    assert graph.edges["B", "C"] == {"capacity_mbps": 100.0, "igp_weight": 2, "delay": 9}
    assert graph.edges["C", "B"] == graph.edges["B", "C"]


def test_sndlib_xml_links_are_undirected_with_module_capacities():
    graph = load_topology(str(FIXTURES / "sndlib-network.xml"))
    check_shape(graph)
    assert list(graph.nodes) == ["A", "B", "C"]
    assert graph.nodes["B"]["pos"] == (11.0, 51.0)
    assert graph.edges["A", "B"]["capacity_mbps"] == graph.edges["B", "A"]["capacity_mbps"] == 100
    assert graph.edges["B", "C"]["capacity_mbps"] == 160.0  # largest additional module
    assert graph.edges["C", "A"]["capacity_mbps"] == 622.0  # pre-installed 0: modules count


def test_zoo_graphml_speeds_names_and_parallel_links():
    path = FIXTURES / "zoo-tiny.graphml"
    with pytest.raises(TopologyError, match=r"zoo-tiny.graphml: edge .*: missing capacity"):
        load_topology(str(path))
    graph = load_topology(str(path), default_capacity_mbps=1000)
    check_shape(graph)
    assert graph.graph["name"] == "TinyZoo"
    assert list(graph.nodes) == ["0_New_York", "1_Chicago", "2_Atlanta"]
    assert graph.nodes["1_Chicago"]["pos"] == (-87.65005, 41.85003)
    assert graph.edges["0_New_York", "1_Chicago"]["capacity_mbps"] == 12500.0  # 10G raw + 2.5G
    assert graph.edges["2_Atlanta", "1_Chicago"]["capacity_mbps"] == 155.0
    assert graph.edges["0_New_York", "2_Atlanta"]["capacity_mbps"] == 1000.0  # the default
    assert load_topology(f"{path}:default_capacity_mbps=7").edges[
        "2_Atlanta", "0_New_York"]["capacity_mbps"] == 7.0


def test_repetita_graph_kbps_directed_edges():
    graph = load_topology(str(FIXTURES / "repetita-tiny.graph"))
    check_shape(graph)
    assert graph.nodes["2_Atlanta"]["pos"] == (-84.38798, 33.749)
    assert graph.edges["0_New_York", "1_Chicago"] == {
        "capacity_mbps": 9953.28, "igp_weight": 10.0, "delay": 1913.0}
    assert graph.edges["1_Chicago", "2_Atlanta"]["capacity_mbps"] == pytest.approx(4976.64)
    assert graph.edges["2_Atlanta", "1_Chicago"] == graph.edges["1_Chicago", "2_Atlanta"]
    assert graph.edges["0_New_York", "2_Atlanta"]["capacity_mbps"] == 1000.0


def test_format_is_sniffed_when_the_extension_says_nothing(tmp_path):
    path = tmp_path / "network.txt"
    path.write_text((FIXTURES / "repetita-tiny.graph").read_text())
    assert load_topology(str(path)).number_of_nodes() == 3
    path.write_text("hello")
    with pytest.raises(TopologyError, match="network.txt: unknown topology format"):
        load_topology(str(path))


def test_files_reject_unknown_parameters():
    with pytest.raises(TopologyError, match=r"unknown parameter\(s\) k for a json file"):
        load_topology(str(FIXTURES / "tiny.json"), k=4)


# -- validation ----------------------------------------------------------------------------

def topology(nodes, links):
    return {"name": "bad", "unit": "Mbit/s", "nodes": nodes,
            "links": [{"src": s, "dst": d, "capacity_mbps": c} for s, d, c in links]}


ABC = ["A", "B", "C"]
RING = [("A", "B", 10), ("B", "C", 10), ("C", "A", 10)]


@pytest.mark.parametrize("data, message", [
    (topology(ABC, RING + [("A", "Z", 10)]), r"bad.json: link 3 \(A -> Z\): unknown node 'Z'"),
    (topology(ABC, RING + [("B", "B", 10)]), r"bad.json: link 3 \(B -> B\): self-loop"),
    (topology(ABC, RING[:2] + [("C", "A", None)]), r"link 2 \(C -> A\): missing capacity"),
    (topology(ABC, RING[:2] + [("C", "A", 0)]), "capacity_mbps must be positive, got 0"),
    (topology(ABC, RING[:2] + [("C", "A", -5)]), "capacity_mbps must be positive"),
    (topology(ABC, RING[:2] + [("C", "A", "fast")]), "capacity_mbps is not a number: 'fast'"),
    (topology(ABC, RING[:2] + [("C", "A", True)]), "capacity_mbps is not a number: True"),
    (topology(ABC, RING[:2] + [("C", "A", "nan")]), "capacity_mbps must be positive"),
    (topology(["A", "B", "A"], RING[:1]), "bad.json: duplicate node 'A'"),
    (topology(ABC + ["D"], RING), r"bad.json: not connected: 2 parts, e.g. 'D'"),
    (topology(["A"], []), "bad.json: needs at least 2 nodes, has 1"),
    (topology(["A", {"name": "B", "dpid": 1}], RING[:1]),
     "bad.json: duplicate dpid 1 \\(nodes 'A' and 'B'\\)"),
    (topology(["A", {"name": "B", "dpid": "x"}], RING[:1]), "node 'B': dpid must be an int"),
    (topology(["A", {"name": "B", "hosts": "no"}], RING[:1]), "hosts must be true or false"),
    ({"nodes": ABC}, "expected an object with 'nodes' and 'links' lists"),
    ({**topology(ABC, RING), "unit": "Gbit/s"}, "unit must be 'Mbit/s'"),
])
def test_invalid_topologies_are_rejected_naming_the_file(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TopologyError, match=message) as error:
        load_topology(str(path))
    assert str(error.value).startswith(str(path))


def test_unknown_node_message_is_exact(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps(topology(ABC, RING + [("A", "Z", 10)])))
    with pytest.raises(TopologyError) as error:
        load_topology(str(tmp_path / "bad.json"))
    assert str(error.value) == f"{tmp_path / 'bad.json'}: link 3 (A -> Z): unknown node 'Z'"


@pytest.mark.parametrize("name, text, message", [
    ("broken.json", "{not json", "not valid JSON"),
    ("broken.xml", "<network><oops>", "not valid XML"),
    ("other.xml", "<network/>", "not an SNDlib network"),
    ("broken.graphml", "<graphml><graph>", "not valid GraphML"),
    ("broken.graph", "NODES 2\nlabel x y\nA 0 0\n", "not a Repetita .graph file"),
    ("short.graph", "NODES 2\nlabel x y\nA 0 0\nB 1 1\nEDGES 2\nlabel\ne0 0 1 1 10 1\n",
     "EDGES says 2, found 1"),
    ("range.graph", "NODES 2\nlabel x y\nA 0 0\nB 1 1\nEDGES 1\nlabel\ne0 0 7 1 10 1\n",
     "node index 7 out of range"),
])
def test_unreadable_files_are_clear_errors(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TopologyError, match=message):
        load_topology(str(path))


def test_node_order_and_edge_order_are_stable():
    first, second = (load_topology(str(FIXTURES / "zoo-tiny.graphml"),
                                   default_capacity_mbps=1) for _ in range(2))
    assert list(first.edges) == list(second.edges)
    assert physical_links(first) == physical_links(second)


# -- views ---------------------------------------------------------------------------------

def test_summary_and_physical_links():
    graph = load_topology("abilene")
    summary = topology_summary(graph)
    assert (summary["num_nodes"], summary["num_links"], summary["num_physical_links"]) == \
        (12, 30, 15)
    assert summary["nodes"][0] == {"name": "ATLAM5", "dpid": 1, "hosts": True,
                                   "pos": [-84.3833, 33.75]}
    assert summary["links"][0] == {"src": "ATLAM5", "dst": "ATLAng", "capacity_mbps": 9920.0}
    assert summary["total_capacity_mbps"] == sum(link["capacity_mbps"] for link in summary["links"])
    json.dumps(summary)
    links = physical_links(graph)
    assert len({frozenset(link) for link in links}) == len(links) == 15


# -- the Topology Zoo set ------------------------------------------------------------------

def test_every_zoo_file_loads_or_fails_clearly():
    folder = SHARED_TOPOLOGIES / "zoo"
    files = sorted(folder.glob("*.json"))
    if not files:
        pytest.skip(f"shared zoo topologies absent: {folder} (set RYUTE_DATA)")
    failures = {}
    for path in files:
        try:
            check_shape(load_topology(str(path)))
        except TopologyError as error:
            assert str(error).startswith(str(path)), error
            failures[path.name] = str(error)
    print(f"zoo: {len(files) - len(failures)} of {len(files)} load; failures: {failures}")
    assert len(files) - len(failures) >= 0.95 * len(files), failures


# -- CLI -----------------------------------------------------------------------------------

def test_cli_topology_list(capsys):
    assert main(["topology", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in builtin_names())
    assert "k=4, capacity_mbps=1000" in out


def test_cli_topology_show_table_and_json(capsys):
    assert main(["topology", "show", "abilene"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("abilene: 12 nodes, 15 links (30 directed)")
    assert "ATLAng  IPLSng  2480" in out
    assert main(["topology", "show", "fat-tree", "--param", "k=2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["name"], summary["num_nodes"]) == ("fat-tree-k2", 5)


def test_cli_bad_topology_exits_2_naming_the_file(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(topology(ABC, RING + [("A", "Z", 10)])))
    assert main(["topology", "show", str(path)]) == 2
    assert f"{path}: link 3 (A -> Z): unknown node 'Z'" in capsys.readouterr().err
    assert main(["topology", "show", "ring", "--param", "n"]) == 2
    assert "--param must look like KEY=VALUE" in capsys.readouterr().err


def test_wan_is_a_seeded_connected_backbone_with_traffic_at_its_edge():
    import networkx as nx

    from topologies.catalog import load_topology

    g = load_topology("wan:n=120,edge=24,seed=3")
    again = load_topology("wan", n=120, edge=24, seed=3)
    assert sorted(g.edges(data="capacity_mbps")) == sorted(again.edges(data="capacity_mbps"))
    assert sorted(g.edges) != sorted(load_topology("wan:n=120,edge=24,seed=4").edges)
    assert nx.is_strongly_connected(g) and g.number_of_nodes() == 120
    degree = dict(g.out_degree())
    assert 2.0 <= sum(degree.values()) / 120 <= 3.5  # backbone-like mean degree
    hosts = [v for v, h in g.nodes(data="hosts") if h]
    assert len(hosts) == 24 and max(degree[v] for v in hosts) <= min(
        degree[v] for v in g if v not in hosts)
    caps = {c for _, _, c in g.edges(data="capacity_mbps")}
    assert caps <= {1000.0, 4000.0, 10000.0} and len(caps) >= 2
    every = load_topology("wan:n=10,edge=0")
    assert all(every.nodes[v]["hosts"] for v in every)
    for bad, message in (("wan:n=2", "n must be >= 3"), ("wan:n=10,edge=11", "edge must be")):
        with pytest.raises(TopologyError, match=message):
            load_topology(bad)

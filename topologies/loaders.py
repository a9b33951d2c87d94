"""Topology file readers and the one validating graph builder they all share.

Every reader turns its format into plain facts (nodes, links) and hands them to
:func:`build_graph`, so each format gets the same checks and the same graph shape:

- ``G.graph["name"]`` and ``G.graph["source"]`` (the file, or the built-in's name);
- nodes in the file's order, each with ``dpid`` (int), ``hosts`` (bool) and, when known,
  ``pos`` = (longitude, latitude);
- every physical link in both directions, each directed edge with ``capacity_mbps``
  (float > 0) and, when the format has them, ``igp_weight`` and ``delay``.

Parallel links between the same two nodes (Topology Zoo graphs are multigraphs, and so are
the Repetita files derived from them) are merged into one edge: capacities add up, because
OpenFlow sees them as one logical link whose capacity is their sum (as with a LAG); the
``igp_weight`` and ``delay`` kept are those of the member with the smallest ``igp_weight`` (the
first on a tie), the one IGP routing would prefer.

Formats (chosen by extension, else by sniffing the content):

``.json``
    The shared format (``nodes``, directed ``links`` with ``capacity_mbps``,
    ``coordinates_lon_lat``). A node may also be an object ``{"name": .., "dpid": ..,
    "hosts": ..}``. A link listed in one direction only gets its reverse added.
``.xml``
    SNDlib native network XML. SNDlib links are undirected: both directions are added.
    Capacity is the pre-installed module's capacity; a link without one gets its largest
    additional module (the most it can carry once equipped). SNDlib states no unit; the
    capacities are taken as Mbit/s, which is what SNDlib's Abilene and GEANT use.
``.graphml``
    Internet Topology Zoo. Capacity from ``LinkSpeedRaw`` (bit/s), else ``LinkSpeed`` with
    ``LinkSpeedUnits``, else the ``default_capacity_mbps`` parameter, else an error. Node
    names are ``"{id}_{label}"`` (spaces as underscores), as Repetita names them, so that
    Repetita's traffic matrices align with the zoo graphs.
``.graph``
    Repetita text format. Edges are directed; a missing reverse is added. Repetita documents
    ``bw`` in kbit/s (converted to Mbit/s here) and ``delay`` in microseconds (kept as is).
"""
from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

LOG = logging.getLogger(__name__)

MAX_DPID = 2**64 - 1


class TopologyError(ValueError):
    """A topology that cannot be used; the message names the file (or built-in) and the problem."""


@dataclass(frozen=True)
class NodeFact:
    """One node as a file states it; ``dpid=None`` means "its position + 1"."""

    name: str
    dpid: int | None = None
    pos: tuple[float, float] | None = None
    hosts: bool = True


@dataclass(frozen=True)
class LinkFact:
    """One link as a file states it; ``where`` names it in error messages (``"link 3"``)."""

    src: str
    dst: str
    capacity_mbps: Any
    where: str
    extra: Mapping[str, Any] = field(default_factory=dict)


# -- the builder ---------------------------------------------------------------------------

def build_graph(name: str, nodes: Sequence[NodeFact], links: Iterable[LinkFact], *,
                source: str, undirected: bool) -> nx.DiGraph:
    """Validate the facts and build the graph; ``undirected`` links get both directions.

    Raises TopologyError, prefixed with ``source``, for: fewer than 2 nodes, a duplicate node
    or dpid, a link to an unknown node, a self-loop, a missing, non-numeric or non-positive
    capacity, and a network that is not connected.
    """
    def fail(problem: str) -> TopologyError:
        return TopologyError(f"{source}: {problem}")

    graph = nx.DiGraph(name=name, source=source)
    for position, node in enumerate(nodes):
        if node.name in graph:
            raise fail(f"duplicate node '{node.name}'")
        attrs: dict[str, Any] = {"dpid": _dpid(node, position, fail), "hosts": bool(node.hosts)}
        if node.pos is not None:
            attrs["pos"] = node.pos
        graph.add_node(node.name, **attrs)
    if graph.number_of_nodes() < 2:
        raise fail(f"needs at least 2 nodes, has {graph.number_of_nodes()}")
    _check_unique_dpids(graph, fail)

    stated: dict[tuple[str, str], None] = {}  # ordered, so the graph's edge order is stable
    for link in links:
        capacity = _check_link(graph, link, fail)
        pairs = [(link.src, link.dst)]
        if undirected:
            pairs.append((link.dst, link.src))
        for u, v in pairs:
            _add_or_merge(graph, u, v, capacity, link.extra)
            stated[u, v] = None
    for u, v in list(stated):
        if (v, u) not in stated:
            graph.add_edge(v, u, **graph.edges[u, v])
    if not nx.is_weakly_connected(graph):
        parts = sorted(nx.weakly_connected_components(graph), key=len)
        raise fail(f"not connected: {len(parts)} parts, e.g. {_names(parts[0])} "
                   "cannot reach the rest")
    return graph


def _dpid(node: NodeFact, position: int, fail) -> int:
    if node.dpid is None:
        return position + 1
    dpid = node.dpid
    if isinstance(dpid, bool) or not isinstance(dpid, int) or not 0 < dpid <= MAX_DPID:
        raise fail(f"node '{node.name}': dpid must be an integer from 1 to 2**64-1, "
                   f"got {dpid!r}")
    return dpid


def _check_unique_dpids(graph: nx.DiGraph, fail) -> None:
    owner: dict[int, str] = {}
    for node, dpid in graph.nodes(data="dpid"):
        if dpid in owner:
            raise fail(f"duplicate dpid {dpid} (nodes '{owner[dpid]}' and '{node}')")
        owner[dpid] = node


#: Capacities outside these bounds are typos or crafted (1 kbit/s .. 1 Pbit/s).
MIN_CAPACITY_MBPS = 1e-3
MAX_CAPACITY_MBPS = 1e9


def _check_link(graph: nx.DiGraph, link: LinkFact, fail) -> float:
    def link_fail(problem: str) -> TopologyError:
        return fail(f"{link.where} ({link.src} -> {link.dst}): {problem}")

    for end in (link.src, link.dst):
        if end not in graph:
            raise link_fail(f"unknown node '{end}'")
    if link.src == link.dst:
        raise link_fail("self-loop")
    capacity = positive_number(link.capacity_mbps, "capacity_mbps", link_fail)
    if not MIN_CAPACITY_MBPS <= capacity <= MAX_CAPACITY_MBPS:  # 1e-320 passed, the LP failed
        raise link_fail(f"capacity_mbps must be in {MIN_CAPACITY_MBPS:g}..{MAX_CAPACITY_MBPS:g}, "
                        f"got {link.capacity_mbps!r}")
    return capacity


def positive_number(value: Any, what: str, fail) -> float:
    """``value`` as a finite float > 0, or ``fail(message)`` raised."""
    if value is None:
        raise fail(f"missing {what}")
    if isinstance(value, bool):
        raise fail(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise fail(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise fail(f"{what} must be positive, got {value!r}")
    return number


def _add_or_merge(graph: nx.DiGraph, u: str, v: str, capacity: float,
                  extra: Mapping[str, Any]) -> None:
    if not graph.has_edge(u, v):
        graph.add_edge(u, v, capacity_mbps=capacity, **extra)
        return
    edge = graph.edges[u, v]
    edge["capacity_mbps"] += capacity
    if extra.get("igp_weight", math.inf) < edge.get("igp_weight", math.inf):
        edge.update(extra)


def _names(nodes: Iterable[str], limit: int = 3) -> str:
    names = sorted(nodes)
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


# -- reading files -------------------------------------------------------------------------

def read_topology_file(path: str | Path, **params: Any) -> nx.DiGraph:
    """Read a topology file in any supported format (see the module docstring).

    ``params``: ``name`` (overrides the file's name) and, for GraphML only,
    ``default_capacity_mbps``. Anything else is a TopologyError.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise TopologyError(f"{source}: cannot read: {error}") from None
    kind = _format_of(path, text)
    allowed = {"name"} | ({"default_capacity_mbps"} if kind == "graphml" else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TopologyError(f"{source}: unknown parameter(s) {', '.join(unknown)} for a "
                            f"{kind} file (accepted: {', '.join(sorted(allowed))})")
    name = params.pop("name", None) or path.name.split(".")[0]
    return READERS[kind](text, name=name, source=source, **params)


def _format_of(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    head = text.lstrip()[:2000]
    if head.startswith("{"):
        return "json"
    if head.startswith("NODES"):
        return "repetita"
    if "<graphml" in head:
        return "graphml"
    if "<network" in head:
        return "sndlib"
    raise TopologyError(f"{path}: unknown topology format (expected .json, SNDlib .xml, "
                        "Topology Zoo .graphml or Repetita .graph)")


def read_json(text: str, *, name: str, source: str) -> nx.DiGraph:
    """The shared JSON format; see the module docstring."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TopologyError(f"{source}: not valid JSON: {error}") from None
    except RecursionError:
        raise TopologyError(f"{source}: not valid JSON: nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) \
            or not isinstance(data.get("links"), list):
        raise TopologyError(f"{source}: expected an object with 'nodes' and 'links' lists")
    unit = data.get("unit", "Mbit/s")
    if unit != "Mbit/s":
        raise TopologyError(f"{source}: unit must be 'Mbit/s', got {unit!r}")
    coords = data.get("coordinates_lon_lat") or {}
    if not isinstance(coords, dict):
        raise TopologyError(f"{source}: coordinates_lon_lat must be an object "
                            "{name: [lon, lat]}")
    nodes = [_json_node(item, index, coords, source) for index, item in enumerate(data["nodes"])]
    links = [_json_link(item, index, source) for index, item in enumerate(data["links"])]
    return build_graph(str(data.get("name") or name), nodes, links, source=source,
                       undirected=False)


def _json_node(item: Any, index: int, coords: Mapping[str, Any], source: str) -> NodeFact:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise TopologyError(f"{source}: node {index}: expected a name or an object with "
                            f"'name', got {item!r}")
    name = item["name"]
    if not isinstance(item.get("hosts", True), bool):
        raise TopologyError(f"{source}: node '{name}': hosts must be true or false")
    pos = item.get("pos", coords.get(name))
    return NodeFact(name=name, dpid=item.get("dpid"), hosts=item.get("hosts", True),
                    pos=_lon_lat(pos, f"node '{name}'", source))


def _lon_lat(pos: Any, where: str, source: str) -> tuple[float, float] | None:
    if pos is None:
        return None
    try:
        lon, lat = (float(x) for x in pos)
    except (TypeError, ValueError):
        raise TopologyError(f"{source}: {where}: coordinates must be [lon, lat], "
                            f"got {pos!r}") from None
    return (lon, lat)


def _json_link(item: Any, index: int, source: str) -> LinkFact:
    if not isinstance(item, dict) or not {"src", "dst"} <= set(item):
        raise TopologyError(f"{source}: link {index}: expected an object with 'src' and "
                            f"'dst', got {item!r}")
    def fail(problem: str) -> TopologyError:
        return TopologyError(f"{source}: link {index}: {problem}")

    extra = {}
    if item.get("igp_weight") is not None:  # compared between parallel links: a number
        extra["igp_weight"] = positive_number(item["igp_weight"], "igp_weight", fail)
    if item.get("delay") is not None:
        extra["delay"] = item["delay"]
        if item["delay"] != 0:
            extra["delay"] = positive_number(item["delay"], "delay", fail)
    return LinkFact(str(item["src"]), str(item["dst"]), item.get("capacity_mbps"),
                    f"link {index}", extra)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: ET.Element | None, name: str) -> list[ET.Element]:
    return [] if element is None else [c for c in element if _local(c.tag) == name]


def _text(element: ET.Element | None, name: str) -> str | None:
    child = None if element is None else _child(element, name)
    return None if child is None or child.text is None else child.text.strip()


def read_sndlib(text: str, *, name: str, source: str) -> nx.DiGraph:
    """SNDlib native network XML; see the module docstring for direction and capacity."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise TopologyError(f"{source}: not valid XML: {error}") from None
    structure = _child(root, "networkStructure")
    if _local(root.tag) != "network" or structure is None:
        raise TopologyError(f"{source}: not an SNDlib network (expected "
                            "<network><networkStructure>)")
    nodes_el = _child(structure, "nodes")
    geographical = nodes_el is not None and nodes_el.get("coordinatesType") == "geographical"
    nodes = [NodeFact(name=node.get("id", ""), pos=_sndlib_pos(node, source)
                      if geographical else None) for node in _children(nodes_el, "node")]
    links = [LinkFact(_text(link, "source") or "", _text(link, "target") or "",
                      _sndlib_capacity(link), f"link '{link.get('id')}'")
             for link in _children(_child(structure, "links"), "link")]
    return build_graph(name, nodes, links, source=source, undirected=True)


def _sndlib_pos(node: ET.Element, source: str) -> tuple[float, float] | None:
    coords = _child(node, "coordinates")
    if coords is None:
        return None
    return _lon_lat((_text(coords, "x"), _text(coords, "y")), f"node '{node.get('id')}'", source)


def _sndlib_capacity(link: ET.Element) -> str | float | None:
    pre = _text(_child(link, "preInstalledModule"), "capacity")
    if pre is not None and _is_positive(pre):
        return pre
    modules = [_text(m, "capacity") for m in _children(_child(link, "additionalModules"),
                                                       "addModule")]
    numbers = [float(m) for m in modules if m is not None and _is_positive(m)]
    return max(numbers) if numbers else pre


def _is_positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


SPEED_UNITS_MBPS = {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3, "T": 1e6}


def read_graphml(text: str, *, name: str, source: str,
                 default_capacity_mbps: float | None = None) -> nx.DiGraph:
    """Internet Topology Zoo GraphML; see the module docstring for capacities and names."""
    try:
        zoo = nx.parse_graphml(text, force_multigraph=True)
    except (ET.ParseError, nx.NetworkXError, KeyError, ValueError) as error:
        raise TopologyError(f"{source}: not valid GraphML: {error}") from None
    names = {node: _zoo_name(node, attrs) for node, attrs in zoo.nodes(data=True)}
    nodes = [NodeFact(name=names[node], pos=_zoo_pos(attrs, f"node '{names[node]}'", source))
             for node, attrs in zoo.nodes(data=True)]
    links = [LinkFact(names[u], names[v], _zoo_capacity(attrs, default_capacity_mbps),
                      f"edge '{attrs['id']}'" if "id" in attrs else "edge")
             for u, v, attrs in zoo.edges(data=True)]  # networkx loses the file's edge order
    title = zoo.graph.get("label") or zoo.graph.get("Network") or name
    return build_graph(str(title), nodes, links, source=source,
                       undirected=not zoo.is_directed())


def _zoo_name(node: str, attrs: Mapping[str, Any]) -> str:
    label = attrs.get("label")
    return f"{node}_{'_'.join(str(label).split())}" if label not in (None, "") else str(node)


def _zoo_pos(attrs: Mapping[str, Any], where: str, source: str) -> tuple[float, float] | None:
    lon, lat = attrs.get("Longitude"), attrs.get("Latitude")
    return None if lon is None or lat is None else _lon_lat((lon, lat), where, source)


def _zoo_capacity(attrs: Mapping[str, Any], default: float | None) -> Any:
    raw = attrs.get("LinkSpeedRaw")
    if raw not in (None, ""):
        return float(raw) / 1e6 if _is_positive(str(raw)) else raw
    speed, unit = attrs.get("LinkSpeed"), str(attrs.get("LinkSpeedUnits", "")).strip().upper()
    if speed not in (None, "") and unit in SPEED_UNITS_MBPS and _is_positive(str(speed)):
        return float(speed) * SPEED_UNITS_MBPS[unit]
    return default


def read_repetita(text: str, *, name: str, source: str) -> nx.DiGraph:
    """Repetita ``.graph`` text; ``bw`` kbit/s -> Mbit/s, ``delay`` kept (microseconds)."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    try:
        node_rows, edge_rows = _repetita_sections(lines)
        labels = [row[0] for row in node_rows]
        nodes = [NodeFact(name=row[0], pos=(float(row[1]), float(row[2])) if len(row) >= 3
                          else None) for row in node_rows]
        links = [_repetita_link(row, labels) for row in edge_rows]
    except (ValueError, IndexError) as error:
        raise TopologyError(f"{source}: not a Repetita .graph file: {error}") from None
    return build_graph(name, nodes, links, source=source, undirected=False)


def _repetita_sections(lines: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
    if not lines or lines[0][0] != "NODES":
        raise ValueError("first line must be 'NODES n'")
    n = int(lines[0][1])
    edges_at = 2 + n
    if len(lines) <= edges_at or lines[edges_at][0] != "EDGES":
        raise ValueError(f"expected 'EDGES m' after {n} node lines")
    m = int(lines[edges_at][1])
    node_rows, edge_rows = lines[2:edges_at], lines[edges_at + 2:edges_at + 2 + m]
    if len(edge_rows) != m:
        raise ValueError(f"EDGES says {m}, found {len(edge_rows)} edge lines")
    return node_rows, edge_rows


def _repetita_link(row: list[str], labels: list[str]) -> LinkFact:
    label, src, dst, weight, bw, delay = row[:6]
    ends = []
    for index in (int(src), int(dst)):
        if not 0 <= index < len(labels):
            raise ValueError(f"{label}: node index {index} out of range")
        ends.append(labels[index])
    capacity = float(bw) / 1000.0 if _is_positive(bw) else bw
    return LinkFact(ends[0], ends[1], capacity, label,
                    {"igp_weight": float(weight), "delay": float(delay)})


READERS = {"json": read_json, "sndlib": read_sndlib, "graphml": read_graphml,
           "repetita": read_repetita}
EXTENSIONS = {".json": "json", ".xml": "sndlib", ".graphml": "graphml", ".graph": "repetita"}

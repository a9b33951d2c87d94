"""The operator's web dashboard: a page served on the REST API's port, and the compact JSON
views it polls.

The page (``controller/ui/``: plain HTML, JavaScript and CSS, no build step) draws the network
from ``/te/v1/dashboard/graph`` (fetched again only when the topology version changes) and
polls ``/te/v1/dashboard/live`` at the statistics interval: per-link utilization as one array
in the graph's link order, the mode and health, and the decision records it has not seen yet.
A click on a link or a node asks ``/te/v1/dashboard/link`` or ``/te/v1/dashboard/node`` which
OD pairs and paths load it, with the installed, the agent's and the fallback's weights.

Changes go through the authenticated ``PUT /te/v1/mode`` like any other client's; the page
never holds the token but what the operator types into it (kept in the tab's
``sessionStorage``). Every page response carries a Content-Security-Policy without inline
scripts, and the script writes names from files and switches as text only.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

import networkx as nx
import numpy as np

from api.endpoints import DECISION_RECORD, MODE_VIEW, STATUS_VIEW, Endpoint, Param, obj
from controller.plane import ControlPlane
from controller.rest import HttpError, Request, Response, Route
from sim.loads import od_demands

UI_DIR = Path(__file__).with_name("ui")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/ui": ("index.html", "text/html; charset=utf-8"),
         "/ui/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
         "/ui/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
         "/ui/favicon.svg": ("favicon.svg", "image/svg+xml")}
PAGE_HEADERS = (
    # No inline script or style, nothing from elsewhere, never framed (the mode switch must
    # not be clickjacked), forms never submitted (the page sends its changes with fetch).
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
     "form-action 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"))
MAP_WIDTH = 1000.0
"""Width of the map's coordinate system (the SVG viewBox); the height follows the network."""
RECORDS_PER_POLL = 300
"""At most this many decision records in one answer of the live view (the newest)."""
LAYOUT_KAMADA_KAWAI_MAX = 120
"""Networks without coordinates up to this size get a Kamada-Kawai layout, larger ones a
(faster) spring layout."""

# -- the endpoints (served beside /te/v1's own, and so in its OpenAPI document) --------------
_NUMBERS = {"type": "array", "items": {"type": "number"}}
_INTEGERS = {"type": "array", "items": {"type": "integer"}}
_LIMIT = Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
               "OD pairs in the answer, the busiest first")
_LOADING: dict[str, Any] = {"od_pairs": {"type": "array", "items": obj(
    src={"type": "string"}, dst={"type": "string"}, demand_mbps={"type": "number"},
    load_mbps={"type": "number"}, paths={"type": "array", "items": obj(
        required=("id", "nodes", "uses"), id={"type": "integer"},
        nodes={"type": "array", "items": {"type": "string"}}, uses={"type": "boolean"},
        installed={"type": "number"}, agent={"type": "number"},
        fallback={"type": "number"})})}, "total_od_pairs": {"type": "integer"},
    "total_load_mbps": {"type": "number"}, "sources": {"type": "object"}}
_NO_TOPOLOGY = {409: "no topology yet"}
GRAPH = Endpoint(
    "GET", "/te/v1/dashboard/graph", "The dashboard's map: nodes, coordinates, links",
    obj(version={"type": "integer"}, topology={"type": ["string", "null"]},
        poll_interval_s={"type": "number"}, token_required={"type": "boolean"},
        nodes={"type": "array", "items": {"type": "string"}},
        xy={"type": "array", "items": _NUMBERS}, links={"type": "array", "items": _INTEGERS},
        capacity_mbps=_NUMBERS, width={"type": "number"}, height={"type": "number"},
        coordinates={"type": ["string", "null"]}),
    description="links in the path set's order: the order of the live view's util array")
LIVE = Endpoint(
    "GET", "/te/v1/dashboard/live", "What changes every interval",
    obj(version={"type": "integer"}, status={"allOf": [STATUS_VIEW, MODE_VIEW]},
        model={"type": ["object", "null"]},
        records={"type": "array", "items": DECISION_RECORD}, util=_NUMBERS, down=_INTEGERS,
        measured={"type": "boolean"}),
    query=(Param("since", {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
                 "only the decision records after this seq"),),
    errors={400: "since not an integer in range"})
LINK = Endpoint(
    "GET", "/te/v1/dashboard/link", "The OD pairs whose paths cross a link",
    obj(link={"type": "object"}, predicted_utilization={
        "type": "object", "additionalProperties": {"type": "number"}}, **_LOADING),
    query=(Param("src", {"type": "string", "minLength": 1}, "the link's first switch",
                 required=True),
           Param("dst", {"type": "string", "minLength": 1}, "its second switch", required=True),
           _LIMIT),
    errors={400: "src or dst missing, limit out of range", 404: "no such link",
            **_NO_TOPOLOGY})
NODE = Endpoint(
    "GET", "/te/v1/dashboard/node", "The OD pairs whose paths start, end or pass at a switch",
    obj(node=obj(name={"type": "string"}, dpid={"type": ["integer", "null"]},
                 connected={"type": "boolean"}), **_LOADING),
    query=(Param("name", {"type": "string", "minLength": 1}, "the switch", required=True),
           _LIMIT),
    errors={400: "name missing, limit out of range", 404: "no such switch", **_NO_TOPOLOGY})
PAGE_ENDPOINTS = {path: Endpoint("GET", path, f"The dashboard page: {name}", {"type": "string"},
                                 content_type=kind) for path, (name, kind) in PAGES.items()}


class Views(Protocol):
    """What the dashboard reads of ``controller.resources.Resources``."""

    plane: ControlPlane
    token: Callable[[], str | None]

    def status_view(self) -> dict[str, Any]: ...

    def mode_view(self) -> dict[str, Any]: ...


class Dashboard:
    """The page and its views over the REST resources of one controller."""

    def __init__(self, resources: Views) -> None:
        self.resources = resources
        self.plane = resources.plane
        self._graph: tuple[int, bytes] | None = None  # (topology version, answer)
        self._model: tuple[Any, dict[str, Any] | None] = (None, None)  # (agent, identity)
        self._node_paths: tuple[Any, dict[Any, list[int]]] = (None, {})  # (path set, index)
        self._by_link: tuple[Any, Any] = (None, None)  # (path set, incidence by columns)

    def routes(self) -> list[Route]:
        return [*(Route(PAGE_ENDPOINTS[path], self._page(name, kind))
                  for path, (name, kind) in PAGES.items()),
                Route(GRAPH, lambda request: self.graph_view()),
                Route(LIVE, self.live_view), Route(LINK, self.link_view),
                Route(NODE, self.node_view)]

    @staticmethod
    def _page(name: str, content_type: str):
        def serve(request: Request) -> Response:
            return Response(_static(name), content_type=content_type, headers=PAGE_HEADERS)
        return serve

    # -- the map -----------------------------------------------------------------------------
    def graph_view(self) -> Response:
        """Nodes with map coordinates and the directed links in the path set's order (the
        order of the live view's utilization array); cached per topology version."""
        version = self.plane.view.version
        if self._graph is None or self._graph[0] != version:
            self._graph = (version, _compact(self._graph_document()))
        return Response(self._graph[1])

    def _graph_document(self) -> dict[str, Any]:
        plane, state = self.plane, self.plane.view.state
        document: dict[str, Any] = {
            "version": plane.view.version, "topology": plane.config.topology,
            "poll_interval_s": plane.config.poll_interval_s,
            "token_required": self.resources.token() is not None,
            "nodes": [], "xy": [], "links": [], "capacity_mbps": [], "width": MAP_WIDTH,
            "height": MAP_WIDTH / 2, "coordinates": None}
        if state is None:
            return document
        path_set, scale = state.path_set, plane.view.capacity_scale
        positions, source = map_positions(state.graph)
        index = {node: i for i, node in enumerate(path_set.nodes)}
        height = max((y for _, y in positions.values()), default=0.0) + MAP_MARGIN
        document.update(
            nodes=[str(node) for node in path_set.nodes],
            xy=[[round(positions[node][0], 1), round(positions[node][1], 1)]
                for node in path_set.nodes],
            links=[[index[u], index[v]] for u, v in path_set.edges],
            capacity_mbps=[_round(c / scale) for c in state.capacities],
            height=round(max(height, MAP_WIDTH / 4), 1), coordinates=source)
        return document

    # -- what changes every interval ---------------------------------------------------------
    def live_view(self, request: Request) -> Response:
        """Utilization per link, the down links, mode and health, model identity, and the
        decision records after ``since`` (their seq; the page asks again for the last one it
        has, whose measured MLU arrives an interval later)."""
        since = request.int_query("since") or 0
        plane, state, loop = self.plane, self.plane.view.state, self.plane.loop
        records = [record for record in loop.log.records if record.seq > since]
        document: dict[str, Any] = {
            "version": plane.view.version,
            "status": {**self.resources.status_view(), **self.resources.mode_view()},
            "model": self._model_identity(),
            "records": [record.to_json() for record in records[-RECORDS_PER_POLL:]],
            "util": [], "down": [], "measured": False}
        if state is not None:
            down = state.down_links
            document.update(
                util=[_round(u) for u in np.nan_to_num(state.utilization)],
                down=[i for i, edge in enumerate(state.path_set.edges) if edge in down],
                measured=state.updated_at is not None)
        return Response(_compact(document))

    # -- what loads a link or a node ---------------------------------------------------------
    def link_view(self, request: Request) -> Response:
        """``?src=A&dst=B``: the OD pairs whose paths cross the link A->B, the busiest first."""
        state = self._state()
        path_set = state.path_set
        src, dst = _required(request, "src"), _required(request, "dst")
        edges = {(str(u), str(v)): i for i, (u, v) in enumerate(path_set.edges)}
        if (src, dst) not in edges:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no link {src[:80]}->{dst[:80]} in the "
                                                  "topology")
        link = edges[src, dst]
        uses = np.zeros(path_set.n_paths, dtype=bool)
        uses[self._paths_over(path_set, link)] = True
        scale = self.plane.view.capacity_scale
        capacity = float(state.capacities[link])
        document = {
            "link": {"src": src, "dst": dst, "capacity_mbps": _round(capacity / scale),
                     "load_mbps": _round(float(state.loads_mbps[link]) / scale),
                     "utilization": _round(float(state.utilization[link])),
                     "up": path_set.edges[link] not in state.down_links},
            "predicted_utilization": self._predicted(uses, capacity),
            **self._loading(uses, request)}
        return Response(_compact(document))

    def _predicted(self, uses: np.ndarray, capacity: float) -> dict[str, float]:
        """Each decision's predicted utilization of the link whose paths are ``uses``, on the
        latest matrix (the link's share of ``sim.loads.link_loads``, for its paths only)."""
        state = self._state()
        if state.last_matrix is None:
            return {}
        path_set, paths = state.path_set, np.flatnonzero(uses)
        demand = od_demands(path_set, state.last_matrix)[path_set.path_od[paths]]
        return {name: _round(float(demand @ decision.weights[paths]) / capacity)
                for name, decision in self._decisions().items()}

    def node_view(self, request: Request) -> Response:
        """``?name=A``: the OD pairs whose paths start, end or pass at switch A."""
        state = self._state()
        path_set = state.path_set
        name = _required(request, "name")
        nodes = {str(node): node for node in path_set.nodes}
        if name not in nodes:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no switch {name[:80]!r} in the topology")
        node = nodes[name]
        uses = np.zeros(path_set.n_paths, dtype=bool)
        uses[self._paths_through(path_set).get(node, [])] = True
        document = {"node": {"name": name, "dpid": self.plane.view.dpid_of.get(node),
                             "connected": self.plane.view.dpid_of.get(node)
                             in self.plane.connected},
                    **self._loading(uses, request)}
        return Response(_compact(document))

    def _paths_over(self, path_set, link: int) -> np.ndarray:
        """The paths over link ``link``: a column of the incidence, by columns once per path
        set (slicing a column of the row-major matrix takes 25 ms at 158 k paths)."""
        if self._by_link[0] is not path_set:
            self._by_link = (path_set, path_set.incidence.tocsc())
        columns = self._by_link[1]
        return columns.indices[columns.indptr[link]:columns.indptr[link + 1]]

    def _paths_through(self, path_set) -> dict[Any, list[int]]:
        """The paths through each node, built once per path set (158 k paths: 0.1 s)."""
        if self._node_paths[0] is not path_set:
            through: dict[Any, list[int]] = {}
            for p, path in enumerate(path_set.paths):
                for node in path:
                    through.setdefault(node, []).append(p)
            self._node_paths = (path_set, through)
        return self._node_paths[1]

    def _state(self):
        state = self.plane.view.state
        if state is None:
            raise HttpError(HTTPStatus.CONFLICT, "no topology yet: nothing discovered")
        return state

    def _model_identity(self) -> dict[str, Any] | None:
        agent = self.plane.loop.agent
        if self._model[0] is not agent:
            self._model = (agent, model_identity(agent, self.plane.model_resolved))
        return self._model[1]

    def _decisions(self) -> dict[str, Any]:
        """The installed, the agent's and the fallback's latest decision, those made on the
        current path set."""
        path_set, latest = self._state().path_set, self.plane.loop.latest
        decisions = {"installed": self.plane.decision, "agent": latest["agent"],
                     "fallback": latest["fallback"]}
        return {name: decision for name, decision in decisions.items() if decision is not None
                and (decision.path_set is path_set or decision.path_set == path_set)}

    def _loading(self, uses: np.ndarray, request: Request) -> dict[str, Any]:
        """The OD pairs with a path marked in ``uses``, by the load the installed decision
        puts on those paths (then by demand): each with all its paths and their weights."""
        limit = request.int_query("limit") or 50
        state = self._state()
        path_set, scale = state.path_set, self.plane.view.capacity_scale
        decisions = self._decisions()
        demand = (od_demands(path_set, state.last_matrix) if state.last_matrix is not None
                  else np.zeros(path_set.n_ods))
        installed = decisions.get("installed")
        flows = (demand[path_set.path_od] * installed.weights if installed is not None
                 else np.zeros(path_set.n_paths))
        ods = np.unique(path_set.path_od[uses])
        load = np.bincount(path_set.path_od[uses], weights=flows[uses],
                           minlength=path_set.n_ods)
        order = ods[np.lexsort((ods, -demand[ods], -load[ods]))].tolist()  # busiest first
        weights = {name: decision.weights for name, decision in decisions.items()}
        pairs = []
        for od in order[:limit]:
            src, dst = path_set.od_pairs[od]
            pairs.append({
                "src": str(src), "dst": str(dst), "demand_mbps": _round(demand[od] / scale),
                "load_mbps": _round(load[od] / scale),
                "paths": [{"id": p, "nodes": [str(n) for n in path_set.paths[p]],
                           "uses": bool(uses[p]),
                           **{name: _round(w[p]) for name, w in weights.items()}}
                          for p in path_set.paths_of(od)]})
        return {"od_pairs": pairs, "total_od_pairs": len(ods),
                "total_load_mbps": _round(float(load.sum()) / scale),
                "sources": {"installed": self.plane.loop.source}}


MAP_MARGIN = 30.0


def map_positions(graph: nx.DiGraph) -> tuple[dict[Any, tuple[float, float]], str]:
    """Map coordinates of every node (x in [margin, MAP_WIDTH - margin], y from the margin
    down) and where they come from: ``"file"`` (every node has ``pos``: longitude, latitude
    in an equirectangular projection) or ``"layout"`` (computed)."""
    nodes = list(graph.nodes)
    raw = {node: graph.nodes[node].get("pos") for node in nodes}
    if nodes and all(pos is not None for pos in raw.values()):
        mean_lat = math.radians(sum(float(pos[1]) for pos in raw.values()) / len(nodes))
        points = {node: (float(pos[0]) * max(math.cos(mean_lat), 0.2), -float(pos[1]))
                  for node, pos in raw.items()}
        source = "file"
    else:
        undirected = nx.Graph(graph.to_undirected(as_view=True))
        layout = (nx.kamada_kawai_layout(undirected)
                  if 2 < len(nodes) <= LAYOUT_KAMADA_KAWAI_MAX
                  else nx.spring_layout(undirected, seed=1))
        points = {node: (float(xy[0]), -float(xy[1])) for node, xy in layout.items()}
        source = "layout"
    return _fit(points), source


def _fit(points: dict[Any, tuple[float, float]]) -> dict[Any, tuple[float, float]]:
    """Scaled into the map's width, aspect kept (height at most the width); nodes at one spot
    (one city, one building) spread on a small circle so that each can be clicked."""
    if not points:
        return {}
    xs, ys = [p[0] for p in points.values()], [p[1] for p in points.values()]
    scale = (MAP_WIDTH - 2 * MAP_MARGIN) / max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
    fitted = {node: (MAP_MARGIN + (x - min(xs)) * scale, MAP_MARGIN + (y - min(ys)) * scale)
              for node, (x, y) in points.items()}
    spots: dict[tuple[int, int], list[Any]] = {}
    for node, (x, y) in fitted.items():
        spots.setdefault((round(x / 4), round(y / 4)), []).append(node)
    for group in spots.values():
        if len(group) > 1:
            cx, cy = fitted[group[0]]
            radius = 6.0 + len(group)
            for k, node in enumerate(group):
                angle = 2 * math.pi * k / len(group)
                fitted[node] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    return fitted


def model_identity(agent: Any, resolved: str | None) -> dict[str, Any] | None:
    """What the operator needs to know about the running model, from its file's metadata:
    its id and file, training topology, data and dates, validation scores, and which file
    ``--model default`` resolved to."""
    if agent is None:
        return None
    metadata = _mapping(getattr(agent, "metadata", None))
    training = _mapping(metadata.get("training"))
    topology = _mapping(metadata.get("topology"))
    identity = {
        "id": metadata.get("id"), "path": metadata.get("path"),
        "created": metadata.get("created"), "resolved": resolved,
        "topology": topology.get("name"), "transferred_from": metadata.get("transferred_from"),
        "generalist": isinstance(metadata.get("generalist"), dict),
        "traffic": training.get("traffic"), "intervals": training.get("intervals"),
        "train_dates": training.get("train_dates"),
        "validation_dates": training.get("validation_dates"),
        "validation": _scores(metadata.get("validation")),
    }
    # Strings from the model file only, nothing that cannot be sent as JSON.
    return json.loads(json.dumps(identity, default=str))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scores(value: Any, prefix: str = "", depth: int = 2, limit: int = 12) -> dict[str, float]:
    """The numbers of a validation section, two levels deep, as ``{"stage.metric": value}``
    (MLU over the optimum on the validation matrices)."""
    found: dict[str, float] = {}
    if not isinstance(value, dict) or depth <= 0:
        return found
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, (int, float)) and not isinstance(item, bool) \
                and math.isfinite(item):
            found[name] = round(float(item), 4)
        elif isinstance(item, dict):
            found.update(_scores(item, name, depth - 1, limit))
    return dict(list(found.items())[:limit])


def _required(request: Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"query parameter {name} is required")
    return value


def _round(value: float) -> float:
    return round(float(value), 4)


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


@lru_cache(maxsize=None)
def _static(name: str) -> bytes:
    return (UI_DIR / name).read_bytes()

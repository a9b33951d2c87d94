"""The REST resources of ``/te/v1``: views of a ``ControlPlane`` and the operator's changes.

Each handler answers one endpoint of :mod:`api.endpoints` (``routes``); the server checks the
token, the body's fields and the query's bounds as the endpoint says before the handler runs.

Reads go to the plane's public state; every change goes through a public method (the
``DecisionLoop``'s ``set_mode``/``set_external_weights``, the plane's ``load_model``) and then
``decide``, which the app supplies: it decides and sends the result at once, so a change takes
effect now, not at the next interval. ``controller.rest`` serves the routes.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import numpy as np

from api import endpoints
from controller import pipeline
from controller.dashboard import Dashboard
from controller.decisions import Mode
from controller.plane import ControlPlane
from controller.rest import HttpError, Request, Response, Route

LOG = logging.getLogger("ryute.controller")


class Resources:
    """One handler per resource; ``token()`` is the API token at the time of the request (the
    app may create one at start-up), ``decide()`` decides and installs now."""

    def __init__(self, plane: ControlPlane, *, token: Callable[[], str | None],
                 decide: Callable[[], None], started_at: float | None = None) -> None:
        self.plane = plane
        self.token = token
        self.decide = decide
        self.started_at = time.time() if started_at is None else started_at

    def routes(self) -> list[Route]:
        """The route table of ``/te/v1`` (the endpoints of :mod:`api.endpoints`)."""
        def view(function):
            return lambda request: function()

        return [
            Route(endpoints.STATUS, view(self.status_view)),
            Route(endpoints.MODE, view(self.mode_view)),
            Route(endpoints.SET_MODE, self.set_mode),
            Route(endpoints.SET_MODEL, self.set_model),
            Route(endpoints.PUT_DECISION, self.put_decision),
            Route(endpoints.TOPOLOGY, view(self.topology_view)),
            Route(endpoints.PATHS, view(self.paths_view)),
            Route(endpoints.HOSTS, view(self.hosts_view)),
            Route(endpoints.TRAFFIC, self.traffic_view),
            Route(endpoints.DECISIONS, self.decisions_view),
            Route(endpoints.METRICS, self.metrics_view),
            *Dashboard(self).routes(),  # the web page and its views (controller.dashboard)
        ]

    # -- views -------------------------------------------------------------------------------
    def topology_view(self) -> dict[str, Any]:
        plane = self.plane
        view, discovery = plane.view, plane.discovery
        switches = [{"dpid": dpid, "name": view.name(dpid), "ports": len(discovery.ports(dpid))}
                    for dpid in discovery.switches]
        discovered = [{"src": link.src, "src_port": link.src_port, "dst": link.dst,
                       "dst_port": link.dst_port, "src_name": view.name(link.src),
                       "dst_name": view.name(link.dst)} for link in discovery.links]
        document = {"switches": switches, "links": discovered, "version": view.version}
        if view.state is not None:
            state, scale = view.state, view.capacity_scale
            utilization = state.utilization
            # Rates as the switches carry them (the state is in the topology file's units).
            document["graph_links"] = [
                {"src": str(u), "dst": str(v), "capacity_mbps": float(state.capacities[i]) / scale,
                 "load_mbps": float(state.loads_mbps[i]) / scale,
                 "utilization": float(utilization[i]), "up": (u, v) not in state.down_links}
                for i, (u, v) in enumerate(state.path_set.edges)]
            document["capacity_scale"] = scale
        if plane.expected is not None:
            document["mismatch"] = self._mismatch()
        return document

    def _mismatch(self) -> dict[str, list]:
        """What the topology file and the discovered network disagree on (reported, not fatal)."""
        plane = self.plane
        view, expected = plane.view, plane.expected
        assert expected is not None, "called only with a topology file"
        found = {(view.name(link.src), view.name(link.dst)) for link in plane.discovery.links}
        wanted = {(str(u), str(v)) for u, v in expected.edges}
        known = set(view.node_of)
        return {
            "missing_links": sorted(map(list, wanted - found)),
            "unexpected_links": sorted(map(list, found - wanted)),
            "missing_switches": self._missing_switches(),
            "unknown_switches": sorted(dpid for dpid in plane.connected if dpid not in known),
        }

    def paths_view(self) -> dict[str, Any]:
        state, decision = self.plane.view.state, self.plane.decision
        if state is None:
            return {"version": self.plane.view.version, "od_pairs": []}
        path_set = state.path_set
        pairs = []
        for od, (src, dst) in enumerate(path_set.od_pairs):
            pairs.append({"src": str(src), "dst": str(dst), "paths": [
                {"id": int(p), "label": pipeline.label_of(int(p)),
                 "nodes": [str(n) for n in path_set.paths[p]],
                 "weight": float(decision.weights[p]) if decision is not None else None}
                for p in path_set.paths_of(od)]})
        return {"version": self.plane.view.version, "od_pairs": pairs}

    def hosts_view(self) -> dict[str, Any]:
        view = self.plane.view
        return {"hosts": [{"mac": h.mac, "ip": h.ip, "switch": view.name(h.dpid),
                           "dpid": h.dpid, "port": h.port}
                          for h in sorted(view.hosts.values(), key=lambda h: h.ip)]}

    def traffic_view(self, request: Request) -> dict[str, Any]:
        """The latest measured OD matrix, as the switches carry it (``?units=topology``: in
        the topology file's units, as the policies see it)."""
        units = request.query.get("units", "network")
        if units not in ("network", "topology"):
            raise HttpError(HTTPStatus.BAD_REQUEST, "units must be network or topology")
        state = self.plane.view.state
        if state is None or state.last_matrix is None:
            return {"nodes": [], "od_mbps": [], "updated_at": None, "units": units}
        scale = 1.0 if units == "topology" else self.plane.view.capacity_scale
        return {"nodes": [str(n) for n in state.path_set.nodes],
                "od_mbps": (state.last_matrix / scale).tolist(), "updated_at": state.updated_at,
                "units": units}

    def status_view(self) -> dict[str, Any]:
        plane = self.plane
        state, loop = plane.view.state, plane.loop
        return {
            "mode": loop.mode.value,
            "source": loop.source,
            "model": loop.model_id,
            "model_resolved": plane.model_resolved if loop.model_id else None,
            "health": {"trusted": loop.health.trusted if loop.agent else False,
                       "reasons": loop.health.reasons if loop.agent else ["no model loaded"],
                       "healthy_streak": loop.health.streak},
            "last_decision": plane.last_decision_at,
            "switches": len(plane.connected),
            "links": len(plane.discovery.links),
            "hosts": len(plane.view.hosts),
            "topology": plane.config.topology,
            "topology_version": plane.view.version,
            "mlu": float(state.mlu) if state is not None else None,
            "last_statistics": state.updated_at if state is not None else None,
            "previous_statistics": state.previous_update_at if state is not None else None,
            "uptime_s": round(time.time() - self.started_at, 1),
            "expected_switches": len(plane.view.node_of) if plane.expected is not None else None,
            "missing_switches": self._missing_switches(),
        }

    def _missing_switches(self) -> list[str]:
        """The topology file's switches that are not connected (none without a file)."""
        plane = self.plane
        if plane.expected is None:
            return []
        return sorted(str(node) for dpid, node in plane.view.node_of.items()
                      if dpid not in plane.connected)

    def mode_view(self) -> dict[str, Any]:
        loop = self.plane.loop
        return {"mode": loop.mode.value, "source": loop.source,
                "rollout": loop.rollout.view() if loop.rollout is not None else None}

    def decisions_view(self, request: Request) -> dict[str, Any]:
        """A page of at most ``DECISIONS_PAGE_MAX`` records, newest first; ``next_before``
        pages on to older ones."""
        limit, before = request.int_query("limit"), request.int_query("before")
        loop = self.plane.loop
        records = loop.recent(limit or 0, before)
        oldest = loop.oldest_seq()
        more = bool(records) and oldest is not None and records[-1]["seq"] > oldest
        return {"decisions": records, "next_before": records[-1]["seq"] if more else None}

    def metrics_view(self, request: Request) -> Response:
        metrics = self.plane.metrics
        return Response(metrics.exposition(), content_type=metrics.content_type)

    # -- changes -----------------------------------------------------------------------------
    def set_mode(self, request: Request) -> dict[str, Any]:
        token = self.token()  # checked by the server (endpoint SET_MODE)
        body = request.json_object()
        mode = body.pop("mode")
        if mode not in ("shadow", "active", "external"):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY,
                            f"mode must be 'shadow', 'active' or 'external', got {mode!r}")
        if mode == "external" and token is None:
            raise HttpError(HTTPStatus.FORBIDDEN, "external mode needs a configured api_token")
        loop = self.plane.loop
        try:
            rollout = self.plane.rollout(body)
            changed = Mode(mode) is not loop.mode or rollout != loop.rollout
            if changed:
                loop.set_mode(Mode(mode), rollout, by=request.who())
        except ValueError as error:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        if changed:
            LOG.warning("mode -> %s (by REST request)", mode)
            self.decide()  # takes effect now, not at the next interval
        return self.mode_view()

    def set_model(self, request: Request) -> dict[str, Any]:
        spec = request.json_object()["path"]
        if not isinstance(spec, str) or not spec:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, "path must be a non-empty string")
        try:
            model_id = self.plane.load_model(spec)
        except (ValueError, OSError) as error:
            LOG.error("model %s refused, %s keeps running: %s", spec, self.plane.loop.model_id,
                      error)
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY,
                            f"model refused, the current one keeps running: {error}") from None
        return {"model": model_id, "trusted": False,
                "signed": self.plane.config.trusted_keys is not None}

    def put_decision(self, request: Request) -> dict[str, Any]:
        """In external mode: install these path weights now, if they pass the safety checks."""
        loop = self.plane.loop
        if loop.mode is not Mode.EXTERNAL:
            raise HttpError(HTTPStatus.CONFLICT, f"mode is {loop.mode.value}: external "
                            "decisions are accepted only in external mode")
        weights = request.json_object()["weights"]
        state = self.plane.view.state
        if state is None:
            raise HttpError(HTTPStatus.CONFLICT, "no topology yet")
        if not isinstance(weights, list) or len(weights) != state.path_set.n_paths or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, f"weights must be a list of "
                            f"{state.path_set.n_paths} numbers (one per path id)")
        loop.set_external_weights(np.asarray(weights, dtype=np.float64))
        self.decide()
        record = loop.latest_record()
        return {"source": loop.source, "reasons": record.reasons if record else [],
                "seq": record.seq if record else None}

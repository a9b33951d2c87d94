"""Every endpoint of the controller's REST API, defined once: method, path, who may call it,
what it takes and answers (JSON Schema), and the OpenAPI 3.1 document built from them.

The controller binds a handler to each :class:`Endpoint` (``controller.rest.Route``) and its
server enforces what is written here: the authentication, the body's allowed and required
fields, the query parameters' types and bounds. The client (:mod:`api.client`) takes the
paths from here. A module that adds endpoints (a dashboard) defines its own ``Endpoint``
values and routes them the same way; the served document then lists them too.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Auth = Literal["none", "if-configured", "required"]
"""``none``: anyone who reaches the API; ``if-configured``: the bearer token when one is
configured; ``required``: the token, and refused (403) while none is configured."""

JSON = "application/json"


@dataclass(frozen=True)
class Param:
    """A query parameter (``schema``: JSON Schema with its bounds and default)."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    response: dict[str, Any]
    """JSON Schema of the 200 answer (for ``content_type`` JSON), else ``{"type": "string"}``."""
    auth: Auth = "none"
    request: dict[str, Any] | None = None
    """JSON Schema of the body: an object; its ``properties`` are the allowed fields."""
    query: tuple[Param, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)
    """Error statuses this endpoint answers besides the ones every endpoint may."""
    content_type: str = JSON
    description: str = ""

    @property
    def operation_id(self) -> str:
        words = self.path.strip("/").replace(".", "_").replace("-", "_").split("/")
        return "_".join([self.method.lower(), *(w for w in words if w not in ("te", "v1"))])

    def param(self, name: str) -> Param:
        for param in self.query:
            if param.name == name:
                return param
        raise KeyError(f"{self.method} {self.path} has no query parameter {name!r}")


# -- schemas ---------------------------------------------------------------------------------
def obj(required: Iterable[str] | None = None, **properties: Any) -> dict[str, Any]:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {"type": "object", "properties": properties,
            "required": sorted(properties if required is None else required)}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


STRING, NUMBER, INTEGER, BOOLEAN = ({"type": t} for t in ("string", "number", "integer", "boolean"))
NUMBER_OR_NULL = {"type": ["number", "null"]}
STRING_OR_NULL = {"type": ["string", "null"]}
STRINGS = {"type": "array", "items": STRING}
MODES = ("shadow", "active", "external")
ERROR = obj(error={"type": "string", "minLength": 1,
                    "description": "what is wrong, in one line"})
ROLLOUT = obj(fraction=NUMBER, step=NUMBER, ingress=_nullable(STRINGS), widen_after=INTEGER,
               good_intervals=INTEGER, rolled_back=STRING_OR_NULL)
MODE_VIEW = obj(mode={"enum": list(MODES)}, source=STRING, rollout=_nullable(ROLLOUT))
STATUS_VIEW = obj(
    mode={"enum": list(MODES)}, source=STRING, model=STRING_OR_NULL, model_resolved=STRING_OR_NULL,
    health=obj(trusted=BOOLEAN, reasons=STRINGS, healthy_streak=INTEGER),
    last_decision=NUMBER_OR_NULL, switches=INTEGER, links=INTEGER, hosts=INTEGER,
    topology=STRING_OR_NULL, topology_version=INTEGER, mlu=NUMBER_OR_NULL,
    last_statistics=NUMBER_OR_NULL, previous_statistics=NUMBER_OR_NULL, uptime_s=NUMBER,
    expected_switches={"type": ["integer", "null"],
                       "description": "switches in the topology file (null: discovered)"},
    missing_switches={**STRINGS, "description": "switches of the topology file that are not "
                                                "connected"})
_BY_POLICY = {"type": "object", "additionalProperties": NUMBER_OR_NULL}
DECISION_RECORD = obj(
    required=("seq", "time", "mode", "source", "model", "trusted", "reasons", "predicted_mlu",
              "decision_ms", "differ", "measured_mlu"),
    seq=INTEGER, time=NUMBER, mode={"enum": list(MODES)}, source=STRING, model=STRING_OR_NULL,
    trusted=BOOLEAN, reasons=STRINGS, predicted_mlu=_BY_POLICY, decision_ms=_BY_POLICY,
    differ={"type": ["boolean", "null"]}, transition=STRING_OR_NULL, action=STRING_OR_NULL,
    fraction=NUMBER_OR_NULL, measured_mlu=NUMBER_OR_NULL,
    down_links={"type": "array", "items": STRINGS, "description": "links down at the time"},
    mode_changes={"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}],
                  "description": "the operator's mode changes since the previous record "
                                 "(from, to, by, at)"})
DECISIONS_PAGE_MAX = 100
"""Records per page of ``GET /te/v1/decisions``: a bounded answer, built quickly on the hub
that also serves OpenFlow; older records page with ``before``."""
_LINK = obj(src=INTEGER, src_port=INTEGER, dst=INTEGER, dst_port=INTEGER, src_name=STRING,
             dst_name=STRING)
_GRAPH_LINK = obj(src=STRING, dst=STRING, capacity_mbps=NUMBER, load_mbps=NUMBER,
                   utilization=NUMBER, up=BOOLEAN)
TOPOLOGY_VIEW = obj(
    required=("switches", "links", "version"),
    switches={"type": "array", "items": obj(dpid=INTEGER, name=STRING, ports=INTEGER)},
    links={"type": "array", "items": _LINK}, version=INTEGER,
    graph_links={"type": "array", "items": _GRAPH_LINK}, capacity_scale=NUMBER,
    mismatch=obj(missing_links={"type": "array", "items": STRINGS},
                  unexpected_links={"type": "array", "items": STRINGS},
                  missing_switches=STRINGS, unknown_switches={"type": "array", "items": INTEGER}))
_PATH = obj(id=INTEGER, label=INTEGER, nodes=STRINGS, weight=NUMBER_OR_NULL)
PATHS_VIEW = obj(version=INTEGER, od_pairs={"type": "array", "items": obj(
    src=STRING, dst=STRING, paths={"type": "array", "items": _PATH})})
HOSTS_VIEW = obj(hosts={"type": "array", "items": obj(
    mac=STRING, ip=STRING, switch=STRING, dpid=INTEGER, port=INTEGER)})
TRAFFIC_VIEW = obj(nodes=STRINGS, od_mbps={"type": "array", "items": {
    "type": "array", "items": NUMBER}}, updated_at=NUMBER_OR_NULL,
    units={"enum": ["network", "topology"]})
OPENAPI_VIEW = obj(required=("openapi", "info", "paths"), openapi=STRING, info={"type": "object"},
                    paths={"type": "object"})

_BODY_ERRORS = {400: "the body is not a JSON object of the allowed fields",
                413: "the body is larger than the server accepts"}
_TOKEN_ERRORS = {401: "no 'Authorization: Bearer TOKEN' header", 403: "a wrong token"}

# -- the endpoints of /te/v1 -----------------------------------------------------------------
STATUS = Endpoint("GET", "/te/v1/status", "What the controller is doing",
                  STATUS_VIEW, description="mode, installed source, model, health and its "
                  "reasons, counts of switches (connected, expected, missing), links and "
                  "hosts, the latest MLU")
MODE = Endpoint("GET", "/te/v1/mode", "The mode, and the gradual activation if any", MODE_VIEW)
SET_MODE = Endpoint(
    "PUT", "/te/v1/mode", "Switch between shadow, active and external mode", MODE_VIEW,
    auth="if-configured",
    request=obj(required=("mode",), mode={"enum": list(MODES)},
                fraction={"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
                step={"type": ["number", "null"], "minimum": 0, "maximum": 1},
                ingress=_nullable({"type": "array", "minItems": 1,
                                   "items": {"type": "string", "minLength": 1}})),
    errors={**_BODY_ERRORS, **_TOKEN_ERRORS, 403: "a wrong token, or external mode without "
            "a configured token", 422: "an unknown mode, a rollout field out of range or an "
            "unknown switch"},
    description="``fraction`` (0, 1], ``step`` and ``ingress`` (switch names) make a gradual "
                "activation, in active mode only. The change is decided and installed now.")
SET_MODEL = Endpoint(
    "PUT", "/te/v1/model", "Hot-swap the agent's model file",
    obj(model=STRING, trusted=BOOLEAN, signed=BOOLEAN), auth="required",
    request=obj(path={"type": "string", "minLength": 1}),
    errors={**_BODY_ERRORS, **_TOKEN_ERRORS, 403: "a wrong token, or no token configured",
            422: "the model is refused (the current one keeps running)"},
    description="``path``: a model file on the controller's machine (or ``default``); "
                "validated like any model at start, signatures included.")
PUT_DECISION = Endpoint(
    "PUT", "/te/v1/decision", "Install these path weights now (external mode)",
    obj(source=STRING, reasons=STRINGS, seq={"type": ["integer", "null"]}), auth="required",
    request=obj(weights={"type": "array", "items": NUMBER}),
    errors={**_BODY_ERRORS, **_TOKEN_ERRORS, 403: "a wrong token, or no token configured",
            409: "not in external mode, or no topology yet",
            422: "not one number per path id"},
    description="One weight per path id (``GET /te/v1/paths``); the safety checks still "
                "apply: ``source`` says whether they or the fallback went in, and why.")
TOPOLOGY = Endpoint("GET", "/te/v1/topology", "Switches, discovered links, link loads",
                    TOPOLOGY_VIEW, description="``mismatch``: where the discovered network "
                    "and the topology file disagree")
PATHS = Endpoint("GET", "/te/v1/paths", "Candidate paths and their installed weights",
                 PATHS_VIEW)
HOSTS = Endpoint("GET", "/te/v1/hosts", "Hosts learned from ARP and IPv4", HOSTS_VIEW)
TRAFFIC = Endpoint(
    "GET", "/te/v1/traffic", "The latest measured OD matrix", TRAFFIC_VIEW,
    query=(Param("units", {"enum": ["network", "topology"], "default": "network"},
                 "network: as the switches carry it; topology: in the topology file's units"),),
    errors={400: "an unknown units value"})
DECISIONS = Endpoint(
    "GET", "/te/v1/decisions", "The decision log, newest first, a page at a time",
    obj(decisions={"type": "array", "items": DECISION_RECORD},
         next_before={"type": ["integer", "null"],
                      "description": "the ``before`` of the next (older) page; null: none"}),
    query=(Param("limit", {"type": "integer", "minimum": 1, "maximum": DECISIONS_PAGE_MAX,
                           "default": 20}, "records on this page"),
           Param("before", {"type": "integer", "minimum": 0},
                 "only records older than this seq (the previous page's next_before)")),
    errors={400: "limit or before not an integer in range"})
METRICS = Endpoint("GET", "/metrics", "Prometheus metrics", {"type": "string"},
                   content_type="text/plain; version=0.0.4; charset=utf-8",
                   description="MLU, link utilization, decisions by source, health "
                               "transitions, latencies")
OPENAPI = Endpoint("GET", "/te/v1/openapi.json", "This document", OPENAPI_VIEW,
                   description="built from the routes the server serves")

ENDPOINTS: tuple[Endpoint, ...] = (STATUS, MODE, SET_MODE, SET_MODEL, PUT_DECISION, TOPOLOGY,
                                   PATHS, HOSTS, TRAFFIC, DECISIONS, METRICS, OPENAPI)
"""The controller's own endpoints (a dashboard adds its own beside them)."""

COMMON_ERRORS = {403: "the Host header is not a loopback name (an API on loopback)",
                 404: "no such resource", 405: "method not allowed on this resource",
                 414: "request line too long", 431: "request headers too large",
                 500: "a failing handler (logged)"}


# -- OpenAPI ---------------------------------------------------------------------------------
def openapi(endpoints: Iterable[Endpoint], version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ryute controller", "version": version,
                 "description": "Traffic-engineering controller: status, mode, model, "
                              "decisions. Every error is a JSON object {\"error\": ...}."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    error = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {
        "200": {"description": endpoint.summary,
                "content": {endpoint.content_type: {"schema": endpoint.response}}},
        **{str(code): {"description": why, **error}
           for code, why in sorted(endpoint.errors.items())},
        "default": {"description": "; ".join(f"{code}: {why}" for code, why in
                                             COMMON_ERRORS.items()), **error}}
    operation: dict[str, Any] = {"operationId": endpoint.operation_id,
                                 "summary": endpoint.summary, "responses": responses}
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.query:
        operation["parameters"] = [{"name": p.name, "in": "query", "required": p.required,
                                    "schema": p.schema, "description": p.description}
                                   for p in endpoint.query]
    if endpoint.request is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {
            "schema": {**endpoint.request, "additionalProperties": False}}}}
    if endpoint.auth == "required":
        operation["security"] = [{"bearer": []}]
    elif endpoint.auth == "if-configured":
        operation["security"] = [{}, {"bearer": []}]
    return operation

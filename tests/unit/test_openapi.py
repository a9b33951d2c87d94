"""The route table and the OpenAPI document built from it (issues 13 and 15): every endpoint
defined once, served, documented, and answering what its schema says."""
from __future__ import annotations

import ast
import json
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import jsonschema
import pytest
from openapi_spec_validator import validate

from api import endpoints
from api.endpoints import ENDPOINTS, Endpoint
from controller.app import RyuteApp
from controller.config import ControllerConfig
from controller.decisions import ROLLOUT_FIELDS
from controller.rest import RestApi, Route

ROOT = Path(__file__).resolve().parents[2]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served():
    """The real app's API over real HTTP (no switches), and its URL."""
    app = RyuteApp(ryute_config=ControllerConfig(topology="abilene", api_token="t"))
    api = app.rest_api()
    server = make_server("127.0.0.1", 0, api, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield api, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_the_served_document_is_valid_openapi_and_lists_every_served_route(served):
    api, url = served
    document = get_json(url + endpoints.OPENAPI.path)
    validate(document)  # raises on an invalid OpenAPI 3.1 document
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item}
    served_routes = {(route.endpoint.path, route.endpoint.method) for route in api.routes}
    assert documented == served_routes
    assert {(e.path, e.method) for e in ENDPOINTS} <= served_routes  # the app routes them all
    operation = document["paths"]["/te/v1/model"]["put"]
    assert operation["security"] == [{"bearer": []}]
    assert operation["requestBody"]["content"]["application/json"]["schema"][
        "additionalProperties"] is False
    assert {p["name"] for p in document["paths"]["/te/v1/decisions"]["get"]["parameters"]} == {
        "limit", "before"}


def test_a_route_added_by_another_module_is_served_and_documented():
    """A dashboard adds its routes beside the controller's; nothing else changes."""
    page = Endpoint("GET", "/ui/hello", "A page", {"type": "string"}, content_type="text/html")
    app = RyuteApp(ryute_config=ControllerConfig(topology="abilene"))
    api = RestApi([*app.rest_routes(), Route(page, lambda request: "hello")], token=lambda: None)
    assert api.document["paths"]["/ui/hello"]["get"]["summary"] == "A page"
    validate(api.document)
    with pytest.raises(ValueError, match="two routes for GET /te/v1/status"):
        RestApi([*app.rest_routes(), Route(endpoints.STATUS, lambda r: {})], token=lambda: None)


def test_the_answers_match_their_schemas(served):
    """The document is honest: each served JSON read that needs no parameter answers what its
    schema says (the dashboard's views too)."""
    api, url = served
    checked = []
    for route in api.routes:
        endpoint = route.endpoint
        if endpoint.method != "GET" or endpoint.content_type != endpoints.JSON \
                or any(p.required for p in endpoint.query):
            continue
        jsonschema.validate(get_json(url + endpoint.path), endpoint.response)
        checked.append(endpoint.path)
    assert "/te/v1/dashboard/live" in checked and endpoints.STATUS.path in checked
    error = None
    try:
        urllib.request.urlopen(url + "/te/v1/nothing", timeout=30)
    except urllib.error.HTTPError as refused:
        error = json.loads(refused.read())
    jsonschema.validate(error, endpoints.ERROR)


def test_the_mode_body_lists_the_rollout_fields():
    assert set(endpoints.SET_MODE.request["properties"]) == {"mode", *ROLLOUT_FIELDS}


def test_endpoint_paths_are_written_once():
    """No ``/te/v1/...`` string in the code but in api/endpoints.py and the path of an
    ``Endpoint(...)`` elsewhere (docstrings are prose): every caller takes the path from its
    endpoint."""
    found = []
    for package in ("api", "topologies", "sim", "agents", "controller", "lab", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "api" / "endpoints.py":
                continue
            tree = ast.parse(path.read_text())
            allowed = {id(node.value) for node in ast.walk(tree)
                       if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
            allowed |= {id(node.args[1]) for node in ast.walk(tree)
                        if isinstance(node, ast.Call) and len(node.args) > 1
                        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Endpoint"}
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      and "/te/v1" in node.value and id(node) not in allowed]
    assert not found, "paths written outside an Endpoint:\n" + "\n".join(found)

"""The REST API of the real app over real HTTP, without switches; and the operator CLI."""
from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from controller.app import RyuteApp
from controller.config import ControllerConfig
from lab.cli import main

TOKEN = "s3cret"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api():
    app = RyuteApp(ryute_config=ControllerConfig(topology="abilene", api_token=TOKEN))
    app._decide_and_install = lambda: None  # no switches here: nothing to install
    server = make_server("127.0.0.1", 0, app.rest_api(), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def call(url, path, method="GET", body=None, token=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        # generous: the first model request imports torch, seconds on a busy machine
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_read_endpoints_answer_json(api):
    app, url = api
    for path in ("/te/v1/status", "/te/v1/mode", "/te/v1/topology", "/te/v1/paths",
                 "/te/v1/hosts", "/te/v1/traffic", "/te/v1/decisions?limit=5"):
        status, body = call(url, path)
        assert status == 200, path
        json.loads(body)
    status = json.loads(call(url, "/te/v1/status")[1])
    assert status["mode"] == "shadow" and status["source"] == "fallback"
    assert status["health"]["reasons"] == ["no model loaded"]
    paths = json.loads(call(url, "/te/v1/paths")[1])
    assert len(paths["od_pairs"]) == 132 and paths["od_pairs"][0]["paths"][0]["label"] == 16


def test_metrics_are_prometheus_text(api):
    _, url = api
    status, body = call(url, "/metrics")
    text = body.decode()
    assert status == 200
    for name in ("ryute_mlu_ratio", "ryute_decisions_total", "ryute_decision_latency_seconds_bucket",
                 "ryute_agent_inference_seconds_count", "ryute_health_transitions_total"):
        assert name in text or name.replace("_total", "") in text, name


@pytest.mark.parametrize("path, method, body, token, status, message", [
    ("/te/v1/mode", "PUT", {"mode": "active"}, None, 401, "Authorization: Bearer"),
    ("/te/v1/mode", "PUT", {"mode": "active"}, "wrong", 403, "wrong token"),
    ("/te/v1/mode", "PUT", {"mode": "fast"}, TOKEN, 422, "got 'fast'"),
    ("/te/v1/mode", "PUT", {"mode": "active", "x": 1}, TOKEN, 400, "unknown field(s): x"),
    ("/te/v1/mode", "PUT", {}, TOKEN, 400, "missing field(s): mode"),
    ("/te/v1/mode", "PUT", b"{not json", TOKEN, 400, "not valid JSON"),
    ("/te/v1/mode", "PUT", [1, 2], TOKEN, 400, "must be a JSON object"),
    ("/te/v1/mode", "DELETE", None, TOKEN, 405, "allowed: GET, PUT"),
    ("/te/v1/nothing", "GET", None, None, 404, "no such resource"),
    ("/te/v1/decisions?limit=zero", "GET", None, None, 400, "limit must be an integer"),
    ("/te/v1/model", "PUT", {"path": "/nonexistent.zip"}, TOKEN, 422, "keeps running"),
    ("/te/v1/mode", "PUT", {"mode": "active", "fraction": 0}, TOKEN, 422,
     "fraction must be a number in (0, 1], got 0"),
    ("/te/v1/mode", "PUT", {"mode": "active", "fraction": "half"}, TOKEN, 422,
     "fraction must be a number in (0, 1], got 'half'"),
    ("/te/v1/mode", "PUT", {"mode": "shadow", "fraction": 0.5}, TOKEN, 422,
     "needs mode active, not shadow"),
    ("/te/v1/mode", "PUT", {"mode": "active", "ingress": ["Nowhere"]}, TOKEN, 422,
     "no such switch(es) Nowhere"),
    ("/te/v1/mode", "PUT", {"mode": "active", "ingress": "ATLAng"}, TOKEN, 422,
     "ingress must be a list of switch names"),
])
def test_bad_requests_get_a_clear_4xx(api, path, method, body, token, status, message):
    _, url = api
    raw = body if isinstance(body, bytes) else None
    code, answer = call(url, path, method, None if raw else body, token, raw=raw)
    assert code == status
    assert message in json.loads(answer)["error"]


def test_mode_changes_with_the_token_and_nothing_else_changes(api):
    app, url = api
    before = call(url, "/te/v1/topology")[1]
    code, answer = call(url, "/te/v1/mode", "PUT", {"mode": "active"}, TOKEN)
    assert code == 200 and json.loads(answer)["mode"] == "active"
    assert app.plane.loop.mode.value == "active"
    assert call(url, "/te/v1/topology")[1] == before
    call(url, "/te/v1/mode", "PUT", {"mode": "shadow"}, TOKEN)
    assert app.plane.loop.mode.value == "shadow" and app.plane.loop.rollout is None  # the 4xx changed nothing


def test_a_gradual_activation_through_the_api_and_the_cli(api, capsys):
    app, url = api
    body = {"mode": "active", "fraction": 0.25, "step": 0.25, "ingress": ["ATLAng"]}
    code, answer = call(url, "/te/v1/mode", "PUT", body, TOKEN)
    rollout = json.loads(answer)["rollout"]
    assert code == 200 and (rollout["fraction"], rollout["ingress"]) == (0.25, ["ATLAng"])
    assert json.loads(call(url, "/te/v1/mode")[1])["rollout"]["step"] == 0.25
    assert main(["mode", "active", "--fraction", "0.5", "--ingress", "ATLAng,CHINng", "--url", url,
                 "--token", TOKEN]) == 0
    assert "rollout     50% of the weight of the OD pairs entering at ATLAng, CHINng on the " \
           "agent's split" in capsys.readouterr().out
    assert main(["mode", "active", "--fraction", "2", "--url", url, "--token", TOKEN]) == 2
    assert "422" in capsys.readouterr().err
    assert main(["mode", "active", "--url", url, "--token", TOKEN]) == 0  # in full
    assert app.plane.loop.rollout is None
    call(url, "/te/v1/mode", "PUT", {"mode": "shadow"}, TOKEN)


def test_cli_talks_to_the_api(api, capsys):
    _, url = api
    assert main(["status", "--url", url]) == 0
    assert "mode        shadow" in capsys.readouterr().out
    assert main(["mode", "active", "--url", url, "--token", TOKEN, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "active"
    assert main(["mode", "shadow", "--url", url]) == 2  # no token
    assert "401" in capsys.readouterr().err
    assert main(["mode", "shadow", "--url", url, "--token", TOKEN]) == 0
    assert main(["decisions", "--url", url, "--limit", "3"]) == 0
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the controller" in capsys.readouterr().err


def test_external_decisions_only_in_external_mode_and_only_if_safe(api):
    import time as clock

    import numpy as np

    app, url = api
    app._decide_and_install = RyuteApp._decide_and_install.__get__(app)  # no switches: harmless
    state = app.plane.view.state
    for u, v in state.path_set.edges:  # no switches here: say every link is up
        state.set_link_up(u, v, True)
    state.push_matrix(np.ones((12, 12)) - np.eye(12))
    state.updated_at = clock.time()
    weights = [1.0] * state.path_set.n_paths
    code, answer = call(url, "/te/v1/decision", "PUT", {"weights": weights}, TOKEN)
    assert code == 409 and "only in external mode" in json.loads(answer)["error"]
    assert call(url, "/te/v1/mode", "PUT", {"mode": "external"}, TOKEN)[0] == 200
    code, answer = call(url, "/te/v1/decision", "PUT", {"weights": weights[:3]}, TOKEN)
    assert code == 422 and "list of 522 numbers" in json.loads(answer)["error"]
    code, answer = call(url, "/te/v1/decision", "PUT", {"weights": weights}, None)
    assert code == 401
    code, answer = call(url, "/te/v1/decision", "PUT", {"weights": weights}, TOKEN)
    assert code == 200 and json.loads(answer)["source"] == "external", answer
    np.testing.assert_allclose(app.plane.decision.weights.sum(), state.path_set.n_ods)
    state.set_link_up("ATLAng", "HSTNng", False)  # uniform weights now use a dead link
    code, answer = call(url, "/te/v1/decision", "PUT", {"weights": weights}, TOKEN)
    result = json.loads(answer)
    assert result["source"] == "fallback" and "malformed decision" in result["reasons"][0]
    assert not app.plane.decision.validate(state.down_links)
    call(url, "/te/v1/mode", "PUT", {"mode": "shadow"}, TOKEN)
    app._decide_and_install = lambda: None


def test_status_says_which_model_default_resolved_to(capsys):
    """A network without a shipped model runs the generalist, and says so."""
    app = RyuteApp(ryute_config=ControllerConfig(topology="nsfnet", model="default"))
    app._decide_and_install = lambda: None
    server = make_server("127.0.0.1", 0, app.rest_api(), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        status = json.loads(call(url, "/te/v1/status")[1])
        assert status["model"].startswith("generalist.zip:")
        assert status["model_resolved"] == ("default: generalist.zip, the generalist (no "
                                            "shipped model for topology 'nsfnet')")
        capsys.readouterr()
        assert main(["status", "--url", url]) == 0
        assert "default: generalist.zip, the generalist" in capsys.readouterr().out
    finally:
        server.shutdown()


@contextlib.contextmanager
def active_app(**config):
    """The real app in active mode over real HTTP, its links up, a matrix measured, an agent
    that has earned trust (no switches: decisions install into nothing)."""
    import time as clock

    import numpy as np
    from test_decision_loop import Agent

    from controller.decisions import HealthConfig

    # a budget no busy test machine exceeds: the LP agent is never late by accident here
    app = RyuteApp(ryute_config=ControllerConfig(topology="abilene", mode="active",
                                                 health=HealthConfig(budget_ms=10_000), **config))
    server = make_server("127.0.0.1", 0, app.rest_api(), handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        state = app.plane.view.state
        for u, v in state.path_set.edges:  # no switches here: say every link is up
            state.set_link_up(u, v, True)
        state.push_matrix((np.ones((12, 12)) - np.eye(12)) * 100)
        app.plane.loop.set_agent(Agent(), "test-model")
        for _ in range(3):
            state.updated_at = clock.time()
            app._decide_and_install()
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_a_held_decision_shows_in_the_decisions_the_metrics_and_the_cli(capsys):
    """A transient agent fault in active mode holds the agent's decision."""
    with active_app() as (app, url):
        app.plane.loop.agent.behaviour = "raise"
        app._decide_and_install()
        record = json.loads(call(url, "/te/v1/decisions?limit=1")[1])["decisions"][0]
        assert record["source"] == "agent-held" and record["seq"] == 4
        assert record["action"].startswith("transient fault: holding the agent's decision of "
                                           "seq 3")
        assert json.loads(call(url, "/te/v1/status")[1])["source"] == "agent-held"
        metrics = call(url, "/metrics")[1].decode()
        assert 'ryute_decisions_total{source="agent-held"} 1.0' in metrics
        assert main(["decisions", "--url", url, "--limit", "2"]) == 0
        out = capsys.readouterr().out
        assert "agent-held" in out and "holding the agent's decision of seq 3" in out


def test_a_configured_rollout_blends_then_rolls_back_on_measured_mlu(capsys):
    from sim.loads import link_loads

    with active_app(rollout_fraction=0.5) as (app, url):
        record = json.loads(call(url, "/te/v1/decisions?limit=1")[1])["decisions"][0]
        assert (record["source"], record["fraction"]) == ("blend", 0.5)
        state = app.plane.view.state  # the switches carried twice what the model predicts
        state.set_loads(link_loads(state.path_set, app.plane.decision, state.last_matrix) * 2)
        app._decide_and_install()
        record = json.loads(call(url, "/te/v1/decisions?limit=1")[1])["decisions"][0]
        assert record["source"] == "fallback"
        assert record["action"].startswith("rollback to the fallback, mode shadow: measured MLU")
        mode = json.loads(call(url, "/te/v1/mode")[1])
        assert mode["mode"] == "shadow" and "at 50%" in mode["rollout"]["rolled_back"]

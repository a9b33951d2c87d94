"""The one REST client (api.client) against the real app over real HTTP, without switches."""
from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from conftest import free_port

from api import endpoints
from api.client import ApiError, ControllerClient
from controller.app import RyuteApp
from controller.config import ControllerConfig

TOKEN = "client-token"


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served():
    app = RyuteApp(ryute_config=ControllerConfig(topology="abilene", api_token=TOKEN))
    app._decide_and_install = RyuteApp._decide_and_install.__get__(app)  # no switches: harmless
    server = make_server("127.0.0.1", 0, app.rest_api(), handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_typed_reads(served):
    _, url = served
    client = ControllerClient(url)
    assert client.status()["mode"] == "shadow"
    assert client.mode() == {"mode": "shadow", "source": "fallback", "rollout": None}
    assert len(client.paths()["od_pairs"]) == 132
    assert len(client.topology()["graph_links"]) == 30
    assert client.hosts() == {"hosts": []}
    assert client.traffic(units="topology")["units"] == "topology"
    assert "ryute_mlu" in client.metrics()
    assert set(client.openapi()["paths"]) >= {e.path for e in endpoints.ENDPOINTS}


def test_changes_need_the_token_and_refusals_carry_status_and_reason(served):
    app, url = served
    with pytest.raises(ApiError) as refused:
        ControllerClient(url).set_mode("active")
    assert refused.value.status == 401 and "Authorization: Bearer" in refused.value.reason
    assert str(refused.value).startswith(f"401 from {url}/te/v1/mode: ")
    client = ControllerClient(url, TOKEN)
    with pytest.raises(ApiError) as refused:
        client.set_mode("active", fraction=2.0)
    assert refused.value.status == 422 and "fraction" in refused.value.reason
    answer = client.set_mode("active", fraction=0.5, ingress=("ATLAng",))
    assert answer["rollout"]["fraction"] == 0.5 and answer["rollout"]["ingress"] == ["ATLAng"]
    assert client.set_mode("shadow")["mode"] == "shadow"
    with pytest.raises(ApiError) as refused:
        client.put_model("/nonexistent.zip")
    assert refused.value.status == 422 and "keeps running" in refused.value.reason
    with pytest.raises(ApiError) as refused:
        client.put_decision([1.0] * 522)
    assert refused.value.status == 409
    assert app.plane.loop.mode.value == "shadow" and app.plane.loop.agent is None


def test_the_decision_log_comes_a_bounded_page_at_a_time(served):
    app, url = served
    for _ in range(230):
        app._decide_and_install()
    client = ControllerClient(url)
    newest = app.plane.loop.latest_record().seq
    page = client.decision_page(endpoints.DECISIONS_PAGE_MAX)
    assert len(page["decisions"]) == endpoints.DECISIONS_PAGE_MAX
    assert page["next_before"] == newest - endpoints.DECISIONS_PAGE_MAX + 1
    with pytest.raises(ApiError) as refused:
        client.decision_page(endpoints.DECISIONS_PAGE_MAX + 1)
    assert refused.value.status == 400 and "limit must be in 1..100" in refused.value.reason
    records = client.decisions(230)
    assert [r["seq"] for r in records] == list(range(newest, newest - 230, -1))
    everything = list(client.iter_decisions())
    assert [r["seq"] for r in everything] == list(range(newest, 0, -1))  # all in memory
    assert client.decision_page(5, before=1) == {"decisions": [], "next_before": None}


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:abc", "bad controller URL 'http://127.0.0.1:abc': "),
    ("127.0.0.1:8080", "it must start with http:// or https://"),
    ("http://[::1", "bad controller URL"),
    ("http://", "no host"),
])
def test_a_bad_url_is_refused_in_one_line(url, message):
    with pytest.raises(ApiError, match="^bad controller URL") as refused:
        ControllerClient(url)
    assert message in str(refused.value) and refused.value.status is None


def test_no_controller_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiError) as refused:
        ControllerClient(url).status()
    assert str(refused.value).startswith(f"cannot reach the controller at {url}: ")
    assert "\n" not in str(refused.value) and refused.value.status is None

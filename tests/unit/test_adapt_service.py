"""The adaptation service against the real app's REST API over HTTP (no switches needed)."""
from __future__ import annotations

import threading
from wsgiref.simple_server import make_server

import pytest
from test_rest import QuietHandler

from agents.adapt import AdaptConfig
from agents.adapt_service import build
from controller.app import RyuteApp
from controller.config import ControllerConfig
from topologies.catalog import load_topology
from topologies.traffic import synthetic_traffic

TOKEN = "adapt-token"


@pytest.fixture
def controller(ring_model):
    app = RyuteApp(ryute_config=ControllerConfig(topology="ring:n=5", model=str(ring_model),
                                                 api_token=TOKEN))
    app._decide_and_install = lambda: None  # no switches here
    server = make_server("127.0.0.1", 0, app.rest_api(), handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_each_measured_matrix_is_observed_once_and_training_rounds_run(controller, ring_model,
                                                                        tmp_path):
    app, url = controller
    service = build(url, TOKEN, "ring:n=5", str(ring_model), tmp_path,
                    AdaptConfig(every=4, epochs=1, window=24, holdout=2))
    series = synthetic_traffic(load_topology("ring:n=5"), steps=40, seed=11, load=0.5)
    for t, matrix in enumerate(series.tm):
        app.plane.view.state.push_matrix(matrix)
        app.plane.view.state.updated_at = float(t + 1)
        service.poll_once()
        service.poll_once()  # same statistics: nothing new to observe
    assert len(service.adapter.demands) == min(40, service.adapter.demands.maxlen)
    assert service.adapter.stats.rounds >= 1
    for path in service.published:  # whatever was published is what the controller runs
        assert path.exists()
    if service.published:
        assert service.published[-1].name in app.plane.loop.model_id


def test_a_better_candidate_is_hot_swapped_through_the_api(controller, ring_model, tmp_path,
                                                           monkeypatch):
    app, url = controller
    service = build(url, TOKEN, "ring:n=5", str(ring_model), tmp_path)
    before = app.plane.loop.model_id
    # The adapter's own test proves when a candidate is better; here: what happens next.
    monkeypatch.setattr(service.adapter, "step", lambda: service.adapter.agent)
    app.plane.view.state.push_matrix(synthetic_traffic(load_topology("ring:n=5"), 1, 5).tm[0])
    app.plane.view.state.updated_at = 1.0
    published = service.poll_once()
    assert published is not None and published.exists()
    assert app.plane.loop.model_id != before and published.name in app.plane.loop.model_id
    assert not app.plane.loop.health.trusted  # a new model earns trust like any other

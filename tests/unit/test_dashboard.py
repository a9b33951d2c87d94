"""The dashboard's page and views on the real app over real HTTP, without switches (statistics
intervals fed by ``benchmarks.dashboard.feed_interval``); the page in a browser is
``test_dashboard_browser.py``."""
from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dashboard import feed_interval, live_app, series_for, serve
from controller import dashboard
from controller.dashboard import Dashboard
from controller.rest import Request
from sim.loads import link_loads
from topologies.catalog import load_topology

TOKEN = "dash-token"
UI = Path(dashboard.__file__).with_name("ui")


@pytest.fixture(scope="module")
def live():
    app = live_app("abilene", None, token=TOKEN)
    rng = np.random.default_rng(0)
    for matrix in series_for(app, 6):
        feed_interval(app, matrix, rng)
    server, url = serve(app)
    yield app, url
    server.shutdown()


def get(url: str, path: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get_json(url: str, path: str):
    status, _, body = get(url, path)
    assert status == 200, body
    return json.loads(body)


def put_mode(url: str, mode: str, token: str | None = TOKEN, client: str = "test-suite"):
    request = urllib.request.Request(url + "/te/v1/mode", method="PUT",
                                     data=json.dumps({"mode": mode}).encode(),
                                     headers={"X-Ryute-Client": client,
                                              **({"Authorization": f"Bearer {token}"}
                                                 if token else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_page_is_served_with_a_policy_against_injected_scripts(live):
    _, url = live
    for path, kind in [("/", "text/html"), ("/ui/", "text/html"), ("/ui", "text/html"),
                       ("/ui/dashboard.js", "text/javascript"), ("/ui/dashboard.css", "text/css"),
                       ("/ui/favicon.svg", "image/svg+xml")]:
        status, headers, body = get(url, path)
        assert status == 200 and headers["Content-Type"].startswith(kind), path
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy and headers["X-Frame-Options"] == "DENY"
    status, _, body = get(url, "/ui/../controller/dashboard.py")
    assert status == 404 and b"no such resource" in body


def test_the_page_has_no_inline_script_and_never_parses_data_as_html():
    page = (UI / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, flags=re.S)
    assert scripts == [""], "only external scripts (the policy forbids inline ones)"
    assert not re.search(r"\son[a-z]+\s*=", page), "no inline event handlers"
    assert "style=" not in page
    script = (UI / "dashboard.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function"):
        assert sink not in script, sink
    assert "localStorage" not in script and "sessionStorage" in script


def test_a_request_addressed_to_another_name_is_refused_page_included(live):
    _, url = live
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/", headers={"Host": f"rebound.example:{port}"})
    response = connection.getresponse()
    assert response.status == 403 and b"not a loopback name" in response.read()


def test_the_map_has_every_node_with_coordinates_from_the_file_and_every_link(live):
    app, url = live
    graph = get_json(url, "/te/v1/dashboard/graph")
    path_set = app.plane.view.state.path_set
    assert graph["coordinates"] == "file" and graph["token_required"] is True
    assert graph["nodes"] == [str(n) for n in path_set.nodes]
    assert graph["links"] == [[path_set.nodes.index(u), path_set.nodes.index(v)]
                              for u, v in path_set.edges]
    xy = np.array(graph["xy"])
    assert xy.shape == (12, 2) and (xy >= 0).all() and (xy[:, 0] <= graph["width"]).all()
    assert (xy[:, 1] <= graph["height"]).all()
    west, east = graph["nodes"].index("STTLng"), graph["nodes"].index("NYCMng")
    north, south = graph["nodes"].index("CHINng"), graph["nodes"].index("HSTNng")
    assert xy[west, 0] < xy[east, 0] and xy[north, 1] < xy[south, 1]  # a map, north up
    assert graph["poll_interval_s"] == app.plane.config.poll_interval_s


def test_a_network_without_coordinates_gets_a_readable_layout():
    positions, source = dashboard.map_positions(load_topology("fat-tree"))
    xy = np.array(list(positions.values()))
    assert source == "layout" and len(xy) == 20
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1)[np.triu_indices(20, 1)]
    assert gaps.min() > 10, "no two switches on one spot"
    assert xy.min() >= 0 and xy.max() <= dashboard.MAP_WIDTH


def test_switches_at_one_spot_are_spread_so_each_can_be_clicked():
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from([("a", {"pos": (10.0, 50.0)}), ("b", {"pos": (10.0, 50.0)}),
                          ("c", {"pos": (20.0, 40.0)})])
    positions, source = dashboard.map_positions(graph)
    assert source == "file" and positions["a"] != positions["b"]


def test_live_view_has_utilization_per_link_and_new_records_only(live):
    app, url = live
    state = app.plane.view.state
    document = get_json(url, "/te/v1/dashboard/live")
    np.testing.assert_allclose(document["util"], state.utilization, atol=1e-4)
    assert document["measured"] is True and document["down"] == []
    assert [r["seq"] for r in document["records"]] == list(range(1, 7))
    assert document["status"]["mode"] == "shadow" and document["model"] is None
    later = get_json(url, "/te/v1/dashboard/live?since=5")
    assert [r["seq"] for r in later["records"]] == [6]
    assert len(json.dumps(later["records"])) < len(json.dumps(document["records"]))
    status, _, body = get(url, "/te/v1/dashboard/live?since=-1")
    assert status == 400 and b"since must be in" in body


def test_a_link_shows_the_od_pairs_loading_it_busiest_first(live):
    app, url = live
    state, plane = app.plane.view.state, app.plane
    path_set = state.path_set
    link = int(np.argmax(state.utilization))
    src, dst = (str(n) for n in path_set.edges[link])
    document = get_json(url, f"/te/v1/dashboard/link?src={src}&dst={dst}")
    assert (document["link"]["src"], document["link"]["dst"]) == (src, dst)
    loads = [od["load_mbps"] for od in document["od_pairs"]]
    assert loads == sorted(loads, reverse=True) and loads[0] > 0
    predicted = link_loads(path_set, plane.decision, state.last_matrix)[link]
    assert document["total_load_mbps"] == pytest.approx(predicted, rel=1e-3)
    assert document["predicted_utilization"]["installed"] == pytest.approx(
        predicted / state.capacities[link], abs=1e-4)
    for od in document["od_pairs"]:
        used = [p for p in od["paths"] if p["uses"]]
        assert used and all(any((a, b) == (src, dst) for a, b in zip(p["nodes"], p["nodes"][1:]))
                            for p in used)
        assert sum(p["installed"] for p in od["paths"]) == pytest.approx(1, abs=1e-3)
        assert sum(p["fallback"] for p in od["paths"]) == pytest.approx(1, abs=1e-3)
    crossing = {path_set.path_od[p] for p in path_set.incidence[:, link].nonzero()[0]}
    assert document["total_od_pairs"] == len(crossing)


def test_a_switch_shows_the_od_pairs_through_it(live):
    _, url = live
    document = get_json(url, "/te/v1/dashboard/node?name=KSCYng&limit=500")
    assert document["node"]["name"] == "KSCYng" and document["node"]["dpid"] == 7
    assert len(document["od_pairs"]) == document["total_od_pairs"] > 22  # more than its own
    for od in document["od_pairs"]:
        assert all("KSCYng" in p["nodes"] for p in od["paths"] if p["uses"])


@pytest.mark.parametrize("path, status, message", [
    ("/te/v1/dashboard/link?src=ATLAng", 400, "query parameter dst is required"),
    ("/te/v1/dashboard/link?src=ATLAng&dst=Mars", 404, "no link ATLAng->Mars"),
    ("/te/v1/dashboard/node", 400, "query parameter name is required"),
    ("/te/v1/dashboard/node?name=%3Cscript%3E", 404, "no switch '<script>'"),
    ("/te/v1/dashboard/node?name=KSCYng&limit=0", 400, "limit must be in 1..1000"),
    ("/te/v1/dashboard/graph", 405, None),
])
def test_bad_view_requests_get_a_clear_4xx(live, path, status, message):
    _, url = live
    if status == 405:
        request = urllib.request.Request(url + path, method="PUT", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code == 405
        return
    code, _, body = get(url, path)
    assert code == status and message in json.loads(body)["error"]


def test_mode_changes_are_recorded_with_who_and_when(live):
    app, url = live
    before = time.time()
    put_mode(url, "active", client="dashboard")
    record = app.plane.loop.latest_record()
    (change,) = record.mode_changes
    assert (change["from"], change["to"]) == ("shadow", "active")
    assert change["by"] == "127.0.0.1 (dashboard)" and before <= change["at"] <= time.time()
    assert record.mode == "active"
    feed_interval(app, app.plane.view.state.last_matrix)
    assert app.plane.loop.latest_record().mode_changes is None  # recorded once
    put_mode(url, "shadow", client="ryute\x00\x1b[31m-cli")  # control characters dropped
    assert app.plane.loop.latest_record().mode_changes[0]["by"] == "127.0.0.1 (ryute[31m-cli)"
    shown = get_json(url, "/te/v1/decisions?limit=3")["decisions"]
    assert [c["to"] for r in shown for c in (r["mode_changes"] or [])] == ["shadow", "active"]


def test_a_down_link_shows_in_the_live_view_and_the_records(live):
    app, url = live
    state = app.plane.view.state
    state.set_link_up("ATLAng", "HSTNng", False)
    try:
        feed_interval(app, state.last_matrix)
        document = get_json(url, "/te/v1/dashboard/live")
        assert document["down"] == [state.path_set.link_index("ATLAng", "HSTNng")]
        assert document["records"][-1]["down_links"] == [["ATLAng", "HSTNng"]]
        link = get_json(url, "/te/v1/dashboard/link?src=ATLAng&dst=HSTNng")
        assert link["link"]["up"] is False
    finally:
        state.set_link_up("ATLAng", "HSTNng", True)


def test_model_identity_says_what_was_trained_on_what_and_how_well():
    app = live_app("abilene", "default")
    rng = np.random.default_rng(0)
    for matrix in series_for(app, 2):
        feed_interval(app, matrix, rng)
    views = Dashboard(app.resources)
    identity = json.loads(views.live_view(Request("GET", "/", endpoint=dashboard.LIVE)).body)[
        "model"]
    assert identity["id"].startswith("abilene.zip:") and identity["topology"] == "abilene"
    assert identity["resolved"] == "default: abilene.zip, the shipped model of abilene"
    assert identity["train_dates"] == ["20040301-0000", "20040312-2355"]
    assert identity["validation"]["direct.mean"] == pytest.approx(1.0374, abs=1e-4)
    link = json.loads(views.link_view(Request("GET", "/", {"src": "ATLAng", "dst": "HSTNng"},
                                          endpoint=dashboard.LINK)).body)
    assert {"installed", "agent", "fallback"} <= set(link["predicted_utilization"])
    assert all("agent" in p for od in link["od_pairs"] for p in od["paths"])


def test_a_rollback_is_a_recorded_mode_change():
    from test_rest import active_app

    with active_app(rollout_fraction=0.5) as (app, _):
        state = app.plane.view.state
        state.set_loads(link_loads(state.path_set, app.plane.decision, state.last_matrix) * 2)
        app._decide_and_install()
        record = app.plane.loop.latest_record()
        assert record.mode == "shadow"
        assert [(c["from"], c["to"], c["by"]) for c in record.mode_changes] == [
            ("active", "shadow", "the rollout's rollback")]

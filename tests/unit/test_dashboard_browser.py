"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright, no browser download) against the real app over real HTTP on loopback (its REST
routes with the loopback Host check), with the shipped Abilene model and without switches:
a thread feeds it a statistics interval every ``POLL_S`` (``benchmarks.dashboard``), which
it decides as it does when switches answer. Screenshots go to the test's folder, and to
``$RYUTE_SCREENSHOTS`` when set."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dashboard import feed_interval, live_app, series_for, serve

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-test-token"
POLL_S = 1.0


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return ("dashboard browser test skipped: Debian's chromium is not installed "
                "(scripts/setup.sh system installs chromium and chromium-driver)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "dashboard browser test skipped: playwright is not installed (pip install -e .[dev])"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


class Feeder:
    """A statistics interval every ``POLL_S`` in a thread; ``change`` runs between two."""

    def __init__(self, app) -> None:
        self.app, self.lock, self.stop = app, threading.Lock(), threading.Event()
        self.series = series_for(app, 48, load=0.5)
        self.rng = np.random.default_rng(1)
        self.k = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def interval(self) -> None:
        with self.lock:
            feed_interval(self.app, self.series[self.k % len(self.series)], self.rng)
            self.k += 1

    def _run(self) -> None:
        while not self.stop.wait(POLL_S):
            self.interval()

    def change(self, function) -> None:
        with self.lock:
            function()


@pytest.fixture(scope="module")
def controller():
    app = live_app("abilene", "default", token=TOKEN, poll_interval_s=POLL_S)
    feeder = Feeder(app)
    for _ in range(3):
        feeder.interval()
    server, url = serve(app)
    feeder.thread.start()
    yield app, url, feeder
    feeder.stop.set()
    feeder.thread.join(timeout=10)
    server.shutdown()


def api(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read())


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("RYUTE_SCREENSHOTS"):
        folder = Path(os.environ["RYUTE_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / path.name)


def open_dashboard(page, url: str, links: int) -> None:
    page.goto(url + "/")
    page.wait_for_function(
        "n => { const lines = [...document.querySelectorAll('#links line.link')];"
        " return lines.length === n && lines.every(l => l.style.stroke.startsWith('rgb')); }",
        arg=links, timeout=20_000)


def test_the_map_draws_every_link_coloured_by_its_measured_utilization(controller, page,
                                                                       tmp_path):
    app, url, _ = controller
    graph = api(url, "/te/v1/dashboard/graph")
    open_dashboard(page, url, len(graph["links"]))
    lines = page.locator("#links line.link")
    drawn = {(lines.nth(i).get_attribute("data-src"), lines.nth(i).get_attribute("data-dst"))
             for i in range(lines.count())}
    assert drawn == {(graph["nodes"][a], graph["nodes"][b]) for a, b in graph["links"]}
    assert page.locator("#nodes circle").count() == 12
    assert sorted(page.locator("#node-labels text").all_text_contents()) == sorted(graph["nodes"])
    colours = {lines.nth(i).evaluate("l => l.style.stroke") for i in range(lines.count())}
    assert len(colours) >= 3, colours  # by utilization, not one colour
    labels = page.locator("#link-labels text")
    assert labels.count() == 5 and all(text.endswith("%") for text in labels.all_text_contents())
    live = api(url, "/te/v1/dashboard/live")
    busiest = int(np.argmax(live["util"]))
    assert str(busiest) in {labels.nth(i).get_attribute("data-i") for i in range(5)}
    assert page.locator("#map-info").text_content() == \
        "12 switches, 30 links (coordinates from the topology file)"
    screenshot(page, tmp_path, "dashboard-abilene-shadow")
    assert page.errors == []


def test_a_click_on_a_link_or_a_switch_shows_what_loads_it(controller, page):
    _, url, _ = controller
    graph = api(url, "/te/v1/dashboard/graph")
    open_dashboard(page, url, len(graph["links"]))
    link = page.locator('#links line.link[data-src="ATLAng"][data-dst="HSTNng"]')
    link.click()
    page.wait_for_selector("#details-table tr.od")
    assert page.locator("#details-title").text_content() == "Link ATLAng → HSTNng"
    expected = api(url, "/te/v1/dashboard/link?src=ATLAng&dst=HSTNng")
    rows = page.locator("#details-table tr.od td:first-child").all_text_contents()
    assert len(rows) == len(expected["od_pairs"]) == min(50, expected["total_od_pairs"])
    assert set(rows) == {f"{od['src']} → {od['dst']}" for od in expected["od_pairs"]}
    used = page.locator("#details-table tr.path.uses td:first-child").first.text_content()
    assert used.startswith("● ") and "ATLAng → HSTNng" in used
    summary = page.locator("#details-summary").text_content()
    assert "measured utilization" in summary and "agent" in summary and "fallback" in summary
    page.locator('#nodes circle[data-name="KSCYng"]').click()
    page.wait_for_function("() => document.getElementById('details-title').textContent"
                           " === 'Switch KSCYng'")
    assert page.locator("#details-table tr.od").count() > 0
    assert page.errors == []


def test_the_mode_panel_shows_mode_health_and_model_identity(controller, page):
    _, url, _ = controller
    open_dashboard(page, url, 30)
    page.wait_for_function("() => document.getElementById('mode-value').textContent !== ''")
    status = api(url, "/te/v1/status")
    assert page.locator("#mode-value").text_content() == status["mode"] == "shadow"
    assert page.locator("#source-value").text_content() == "fallback"
    trust = page.locator("#trust-value").text_content()
    assert trust == "trusted" or trust.startswith("untrusted (healthy streak")
    facts = page.locator("#model-facts").text_content()
    for expected in ("abilene.zip:", "default: abilene.zip, the shipped model of abilene",
                     "20040301-0000 – 20040312-2355", "direct.mean 1.037"):
        assert expected in facts, expected
    assert page.locator("#stats-value").text_content().endswith(f"every {POLL_S:g} s")
    assert page.errors == []


def test_the_timeline_gets_points_and_the_decision_log_filters(controller, page):
    _, url, _ = controller
    open_dashboard(page, url, 30)
    page.wait_for_function(
        "() => ['measured', 'fallback', 'agent'].every(name => Number(document.querySelector("
        "`#timeline polyline.${name}`)?.getAttribute('data-points')) >= 3)", timeout=20_000)
    first = int(page.locator("#timeline polyline.measured").get_attribute("data-points"))
    page.wait_for_function(
        f"() => Number(document.querySelector('#timeline polyline.measured')"
        f".getAttribute('data-points')) > {first}", timeout=int(4 * POLL_S * 1000))
    assert "had the agent acted the MLU would have been" in page.locator("#evidence").text_content()
    rows = page.locator("#log-body tr")
    seqs = [int(rows.nth(i).get_attribute("data-seq")) for i in range(rows.count())]
    assert len(seqs) >= 3 and seqs == sorted(seqs, reverse=True)  # newest first
    page.fill("#log-filter", "no such text anywhere")
    assert rows.count() == 0
    page.fill("#log-filter", "")
    page.select_option("#log-source", "agent")
    assert rows.count() == 0  # shadow mode: the fallback is installed
    page.select_option("#log-source", "fallback")
    assert rows.count() >= 3
    assert page.errors == []


def test_the_mode_switch_needs_the_token_and_changes_the_mode(controller, page, tmp_path):
    app, url, _ = controller
    open_dashboard(page, url, 30)
    message = page.locator("#mode-message")
    page.click("#mode-active")
    assert "Type the API token first" in message.text_content()
    page.fill("#token-input", "not-the-token")
    page.click("#token-save")
    page.click("#mode-active")
    page.wait_for_function("() => document.getElementById('mode-message').textContent"
                           ".startsWith('Refused')")
    assert message.text_content().startswith("Refused (403): wrong token")
    assert message.get_attribute("class") == "error" and message.is_visible()
    assert api(url, "/te/v1/status")["mode"] == "shadow"
    assert page.evaluate("sessionStorage.getItem('ryute-api-token')") is None  # forgotten
    page.fill("#token-input", TOKEN)
    page.click("#token-save")
    page.click("#mode-active")
    page.wait_for_function("() => document.getElementById('mode-message').textContent"
                           ".startsWith('Mode is now')")
    assert message.text_content().startswith("Mode is now active")
    assert api(url, "/te/v1/status")["mode"] == "active"
    assert page.evaluate("sessionStorage.getItem('ryute-api-token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0
    assert TOKEN not in page.content()  # typed once, not left in the page
    records = api(url, "/te/v1/decisions?limit=50")["decisions"]
    changes = [c for r in records for c in (r["mode_changes"] or [])]
    assert changes[0]["to"] == "active" and changes[0]["by"] == "127.0.0.1 (dashboard)"
    page.wait_for_selector("#timeline line.mode", state="attached")
    page.wait_for_function("() => document.getElementById('log-body').textContent"
                           ".includes('mode shadow → active by 127.0.0.1 (dashboard)')")
    page.wait_for_function("() => document.getElementById('mode-value').textContent === 'active'")
    screenshot(page, tmp_path, "dashboard-abilene-active")
    other = page.context.browser.new_page()  # another tab: the token stays in the first
    other.goto(url + "/")
    assert other.evaluate("sessionStorage.getItem('ryute-api-token')") is None
    other.close()
    page.click("#mode-shadow")
    page.wait_for_function("() => document.getElementById('mode-message').textContent"
                           ".startsWith('Mode is now shadow')")
    assert api(url, "/te/v1/status")["mode"] == "shadow"
    assert all("status of 403" in error for error in page.errors), page.errors


def test_a_link_failure_shows_on_the_map_within_two_intervals(controller, page):
    app, url, feeder = controller
    open_dashboard(page, url, 30)
    state = app.plane.view.state
    index = state.path_set.link_index("ATLAng", "HSTNng")
    feeder.change(lambda: state.set_link_up("ATLAng", "HSTNng", False))
    started = time.monotonic()
    try:
        page.wait_for_selector(f'#links line.link.down[data-i="{index}"]',
                               timeout=int(2 * POLL_S * 1000))
        shown_s = time.monotonic() - started
        assert page.locator("#links line.link.down").count() == 1
        page.wait_for_selector("#timeline line.link", state="attached",
                               timeout=int(4 * POLL_S * 1000))
        title = page.locator("#timeline line.link title").last.text_content()
        assert title == "down: ATLAng→HSTNng"
    finally:
        feeder.change(lambda: state.set_link_up("ATLAng", "HSTNng", True))
    page.wait_for_selector("#links line.link.down", state="detached",
                           timeout=int(2 * POLL_S * 1000))
    assert shown_s < 2 * POLL_S
    assert page.errors == []


def test_names_from_a_topology_file_are_shown_as_text_and_never_run(browser, tmp_path):
    names = ["<script>window.pwned = 1</script>", "\"><img src=x onerror=\"window.pwned=2\">",
             "O'Brien \"quoted\" & <b>bold</b>"]
    links = [{"src": a, "dst": b, "capacity_mbps": 1000.0}
             for a in names for b in names if a != b]
    topology = tmp_path / "hostile.json"
    topology.write_text(json.dumps({"name": "hostile</title><script>x()</script>",
                                    "nodes": names, "links": links}))
    app = live_app(str(topology), None, token=TOKEN, poll_interval_s=POLL_S)
    rng = np.random.default_rng(0)
    for matrix in series_for(app, 2):
        feed_interval(app, matrix, rng)
    server, url = serve(app)
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        open_dashboard(page, url, 6)
        assert sorted(page.locator("#node-labels text").all_text_contents()) == sorted(names)
        assert page.locator("#topology-name").text_content() == str(topology)
        page.locator("#nodes circle").first.click()
        page.wait_for_function("() => document.getElementById('details-title').textContent"
                               ".startsWith('Switch ')")
        assert page.locator("#details-title").text_content() == f"Switch {names[0]}"
        page.wait_for_selector("#log-body tr")
        assert page.evaluate("window.pwned") is None
        assert page.locator("img, b, #map script, main script").count() == 0
        screenshot(page, tmp_path, "dashboard-hostile-names")
        assert errors == []
    finally:
        page.close()
        server.shutdown()

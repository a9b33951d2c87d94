"""The dashboard in a real browser against a controller connected to Mininet with traffic
(issue 16, item 3): headless Chromium (Debian's, driven by Playwright) on the controller's
own port, Open vSwitch switches, paced UDP traffic replayed by the hosts. The page loads
without console errors, draws the topology's nodes and links, recolours the links when the
traffic starts, switches the mode (with the token; a wrong one is refused where it shows),
and shows a link failure within two statistics intervals. Screenshots of each topology in
shadow and in active mode go to the test's folder and to ``$RYUTE_SCREENSHOTS`` when set."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from agents.baselines import fallback_policy
from lab.config import CAPACITY_SCALE
from lab.emulation import replay, wait_until_ready
from lab.replay import ReplayPlan, choose_traffic_scale
from lab.testbed import Testbed
from sim.loads import mlu
from sim.paths import PathSet
from tests.unit.test_dashboard_browser import _missing, open_dashboard, screenshot
from topologies.catalog import load_topology
from topologies.traffic import load_series

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]

TOKEN = "dashboard-mininet-token"
POLL_S = 1.0
INTERVAL_S = 6.0
MATRICES = 8


def traffic_plan(graph, testbed: Testbed) -> tuple[ReplayPlan, int]:
    """Eight synthetic matrices from 10:00, scaled so the fallback's MLU sits in [0.5, 0.9]."""
    series = load_series("synthetic", graph, steps=120 + MATRICES).slice(120, 120 + MATRICES)
    path_set = PathSet.from_graph(graph, k=4)
    scale = choose_traffic_scale(np.atleast_1d(
        mlu(path_set, fallback_policy(path_set).decision(), series.tm)))
    plan = ReplayPlan.for_graph(graph, series.tm, interval_s=INTERVAL_S, traffic_scale=scale,
                                capacity_scale=CAPACITY_SCALE,
                                switch_prefix=testbed.switch_prefix,
                                host_prefix=testbed.host_prefix, warmup_s=2 * POLL_S,
                                flows=32, payload=9000 - 28)
    return plan, path_set.n_paths


def busy(testbed: Testbed, mlu_at_least: float = 0.3, timeout_s: float = 20.0) -> float:
    """Wait (at most ``timeout_s``) for the replay to load the network; the MLU reached."""
    deadline, reached = time.monotonic() + timeout_s, 0.0
    while time.monotonic() < deadline and reached < mlu_at_least:
        reached = max(reached, testbed.api.status().get("mlu") or 0.0)
        time.sleep(POLL_S / 2)
    return round(reached, 3)


def strokes(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('#links line.link')]"
                         ".map(l => l.style.stroke)")


@pytest.mark.parametrize("topology", ["abilene", "geant"])
def test_the_dashboard_follows_a_live_network(topology, page, tmp_path, measure):
    graph = load_topology(topology)
    with Testbed(topology, poll_interval_s=POLL_S, api_token=TOKEN, switch_prefix="i",
                 host_prefix="z", log_dir=tmp_path,
                 controller_args=("--model", "default", "--mode", "shadow",
                                  "--paths-k", "4", "--path-method", "hops")) as testbed:
        plan, n_paths = traffic_plan(graph, testbed)
        wait_until_ready(testbed, plan, mtu=9000)
        url = testbed.rest_url
        links = testbed.graph.number_of_edges()
        open_dashboard(page, url, links)
        assert page.locator("#nodes circle").count() == graph.number_of_nodes()
        idle = strokes(page)

        failure: list[BaseException] = []

        def send() -> None:
            try:
                replay(testbed, plan, tmp_path / "replay", POLL_S, n_paths)
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                failure.append(error)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()

        # the traffic recolours the map: the links it loads change colour
        page.wait_for_function(
            "idle => [...document.querySelectorAll('#links line.link')]"
            ".filter((l, i) => l.style.stroke !== idle[i]).length >= 3",
            arg=idle, timeout=40_000)
        loaded = sum(a != b for a, b in zip(idle, strokes(page)))
        measure(f"{topology}: links recoloured by the traffic", f"{loaded} of {links}")
        measure(f"{topology}: measured MLU before the screenshots", busy(testbed))
        page.wait_for_function("() => document.getElementById('mode-value').textContent "
                               "=== 'shadow'")
        screenshot(page, tmp_path, f"dashboard-{topology}-shadow")

        # a wrong token is refused where the operator sees it; the right one switches
        page.fill("#token-input", "not-the-token")
        page.click("#token-save")
        page.click("#mode-active")
        page.wait_for_function("() => document.getElementById('mode-message').textContent"
                               ".startsWith('Refused')")
        assert page.locator("#mode-message").is_visible()
        assert testbed.api.status()["mode"] == "shadow"
        page.fill("#token-input", TOKEN)
        page.click("#token-save")
        page.click("#mode-active")
        page.wait_for_function("() => document.getElementById('mode-message').textContent"
                               ".startsWith('Mode is now active')")
        assert testbed.api.status()["mode"] == "active"
        page.wait_for_function("() => document.getElementById('mode-value').textContent "
                               "=== 'active'")
        time.sleep(3 * POLL_S)  # a few decisions of the active phase on the map
        screenshot(page, tmp_path, f"dashboard-{topology}-active")

        # a link failure shows on the map within two statistics intervals
        u, v = next(iter(testbed.graph.edges))
        names = testbed.graph.nodes
        bridges = [f"{testbed.switch_prefix}{names[n]['dpid']}" for n in (u, v)]
        testbed.net.configLinkStatus(*bridges, "down")
        down_at = time.monotonic()
        page.wait_for_selector("#links line.link.down", state="attached", timeout=10_000)
        shown_s = time.monotonic() - down_at
        measure(f"{topology}: link failure on the map after (s)", round(shown_s, 2))
        assert shown_s <= 2 * POLL_S + 1.0  # two intervals, and the page's own poll
        testbed.net.configLinkStatus(*bridges, "up")

        sender.join(timeout=90)
        assert not failure, failure
        assert not sender.is_alive()
        errors = [e for e in page.errors if "status of 403" not in e]  # the wrong token
        assert errors == [], errors

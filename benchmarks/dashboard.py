"""The dashboard's cost on a large network: size and time of every answer the page asks for.

    .venv/bin/python -m benchmarks.dashboard [--topology wan:n=200,edge=50,seed=1]
        [--model default] [--intervals 40] [--repeats 20] [--browser]
        [--out benchmarks/results/dashboard.json]

The real app (``RyuteApp``, its REST routes behind ``RestApi`` with the loopback Host check)
over real HTTP on loopback, without switches: ``--intervals`` statistics intervals are fed to
it (:func:`feed_interval`: a seeded synthetic series, the link loads the installed decision
puts on the network), each one decided by the fallback and the model. Then, per endpoint,
the answer's size in bytes and the median and p90 time of ``--repeats`` requests (client
side: request sent to last byte read): the page and its script, the map (``graph``: first
answer, which computes the layout, and cached ones), the first live answer of a page (the
last 300 decision records) and a steady poll (``since`` the last record), and the details of
the busiest link and of the switch with most paths.

``--browser`` also loads the page in headless Chromium (Debian's ``/usr/bin/chromium``
through Playwright) and reports how long until every link is drawn and coloured, until a click
on a link shows what loads it, and the page's long tasks (the Long Tasks API: over 50 ms of
script and layout at once) in 10 s of polling once a second with an interval fed every second.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np

from benchmarks.common import emit
from sim.loads import link_loads
from topologies.traffic import synthetic_traffic


def feed_interval(app: Any, matrix: np.ndarray, rng: np.random.Generator | None = None) -> None:
    """One statistics interval of an app without switches: every link up, ``matrix`` (topology
    units) measured as the OD matrix and the loads the installed decision (the fallback's
    before the first) puts on the links (times a few percent of noise with ``rng``) measured
    as the links' loads; then the plane decides, as it does when statistics close an interval.
    Links marked down with ``state.set_link_up`` stay down."""
    plane = app.plane
    state = plane.view.state
    state.push_matrix(matrix)
    decision = plane.decision or plane.loop.fallback.decide(state)
    loads = link_loads(state.path_set, decision, matrix)
    if rng is not None:
        loads = loads * rng.uniform(0.97, 1.03, len(loads))
    state.set_loads(loads, at=time.time())
    plane.loop.measured(state.mlu)
    plane.metrics.interval(state)
    app._decide_and_install()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve(app: Any) -> tuple[Any, str]:
    """The app's REST routes on a free loopback port, with the loopback Host check, in a
    daemon thread; returns (server, base URL)."""
    server = make_server("127.0.0.1", 0, app.rest_api(), handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def live_app(topology: str, model: str | None, token: str | None = None,
             poll_interval_s: float = 5.0, **config: Any) -> Any:
    """The real app for ``topology`` without switches, every link up."""
    from controller.app import RyuteApp
    from controller.config import ControllerConfig
    from controller.decisions import HealthConfig, thread_runner

    # A budget no busy machine exceeds: a late agent would only make its fields empty here.
    app = RyuteApp(ryute_config=ControllerConfig(
        topology=topology, model=model, api_token=token, poll_interval_s=poll_interval_s,
        health=HealthConfig(budget_ms=60_000), **config))
    # The app's runner waits on os-ken's eventlet hub, which runs one thread; here the HTTP
    # server's thread (a mode change decides at once) and the caller's both decide.
    app.plane.loop.runner = thread_runner()
    state = app.plane.view.state
    for u, v in state.path_set.edges:  # no switches: say every link is up
        state.set_link_up(u, v, True)
    return app


def series_for(app: Any, steps: int, seed: int = 1, load: float = 0.5) -> np.ndarray:
    """A synthetic series [T, N, N] for the app's topology, in its path set's node order."""
    state = app.plane.view.state
    assert list(state.graph.nodes) == list(state.path_set.nodes), "node orders differ"
    return synthetic_traffic(state.graph, steps=steps, seed=seed, load=load).tm


def _timed(url: str, repeats: int) -> dict[str, Any]:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            size = len(response.read())
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"bytes": size, "median_ms": round(statistics.median(times), 2),
            "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 2),
            "requests": repeats}


def measure(app: Any, url: str, repeats: int) -> dict[str, Any]:
    state = app.plane.view.state
    path_set = state.path_set
    busiest = int(np.argmax(state.utilization))
    src, dst = (str(n) for n in path_set.edges[busiest])
    counts = np.zeros(path_set.n_nodes, dtype=np.int64)
    index = {node: i for i, node in enumerate(path_set.nodes)}
    for path in path_set.paths:
        for node in path:
            counts[index[node]] += 1
    hub = str(path_set.nodes[int(np.argmax(counts))])
    last = app.plane.loop.latest_record().seq
    from controller.dashboard import GRAPH, LINK, LIVE, NODE

    quote = urllib.request.quote
    results = {"graph_first": _timed(url + GRAPH.path, 1)}
    for name, path in [("page", "/"), ("script", "/ui/dashboard.js"),
                       ("graph_cached", GRAPH.path),
                       ("live_first", f"{LIVE.path}?since=0"),
                       ("live_poll", f"{LIVE.path}?since={last - 1}"),
                       ("link", f"{LINK.path}?src={quote(src)}&dst={quote(dst)}"),
                       ("node", f"{NODE.path}?name={quote(hub)}")]:
        results[name] = _timed(url + path, repeats)
    results["link"]["link"], results["node"]["node"] = f"{src}->{dst}", hub
    return results


def browser(url: str, n_links: int, watch_s: float) -> dict[str, Any]:
    """Time until the page has drawn and coloured every link, and until a click on a link
    shows its OD pairs; then the page's long tasks (over 50 ms: a page that does not answer
    input at once) while it polls for ``watch_s``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                              args=["--no-sandbox"])
        page = chromium.new_page(viewport={"width": 1600, "height": 1000})
        page.add_init_script(
            "window.longTasks = []; new PerformanceObserver(list => window.longTasks.push("
            "...list.getEntries().map(e => e.duration))).observe({type: 'longtask', buffered: true});")
        started = time.perf_counter()
        page.goto(url + "/")
        page.wait_for_function(
            "n => document.querySelectorAll('#links line.link').length === n && "
            "[...document.querySelectorAll('#links line.link')].every(l => l.style.stroke)",
            arg=n_links, timeout=60_000)
        drawn_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        page.locator("#links line.link").first.dispatch_event("click")  # may lie under a node
        page.wait_for_selector("#details-table tr.od", timeout=60_000)
        details_ms = (time.perf_counter() - started) * 1000
        page.evaluate("window.longTasks = []")
        time.sleep(watch_s)
        polls = page.evaluate("Number(document.querySelector('#timeline polyline.fallback')"
                              ".getAttribute('data-points'))")
        long_tasks = page.evaluate("window.longTasks")
        chromium.close()
    return {"page_drawn_ms": round(drawn_ms, 1), "link_details_ms": round(details_ms, 1),
            "links_drawn": n_links, "watched_s": watch_s, "timeline_points": polls,
            "long_tasks_while_polling": len(long_tasks),
            "longest_task_ms": round(max(long_tasks, default=0.0), 1)}


def _keep_feeding(app: Any, series: np.ndarray, rng: np.random.Generator,
                  stop: threading.Event) -> None:
    """An interval a second while the browser watches, as a controller's statistics do."""
    k = 0
    while not stop.wait(1.0):
        feed_interval(app, series[k % len(series)], rng)
        k += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topology", default="wan:n=200,edge=50,seed=1")
    parser.add_argument("--model", default="default", help="model spec, or 'none'")
    parser.add_argument("--intervals", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    app = live_app(args.topology, None if args.model == "none" else args.model,
                   poll_interval_s=1.0)  # the page polls every second
    setup_s = time.perf_counter() - started
    series, rng = series_for(app, args.intervals), np.random.default_rng(1)
    decide_ms = []
    for matrix in series:
        begun = time.perf_counter()
        feed_interval(app, matrix, rng)
        decide_ms.append((time.perf_counter() - begun) * 1000)
    server, url = serve(app)
    stop = threading.Event()
    try:
        path_set = app.plane.view.state.path_set
        result: dict[str, Any] = {
            "topology": args.topology, "model": app.plane.loop.model_id,
            "switches": path_set.n_nodes, "links": path_set.n_links, "od_pairs": path_set.n_ods,
            "paths": path_set.n_paths, "intervals": args.intervals,
            "setup_s": round(setup_s, 1), "interval_ms_median": round(statistics.median(decide_ms), 1),
            "endpoints": measure(app, url, args.repeats)}
        if args.browser:
            feeder = threading.Thread(target=_keep_feeding, args=(app, series, rng, stop),
                                      daemon=True)
            feeder.start()
            result["browser"] = browser(url, path_set.n_links, watch_s=10.0)
            stop.set()
            feeder.join(timeout=30)
    finally:
        server.shutdown()
    emit(result, args.out)


if __name__ == "__main__":
    main()

"""The measured-MLU estimator of ``ryute emulate`` and the Mininet environment."""

import time

import numpy as np
import pytest

from lab.emulation import Reading, interval_mlu

EDGES = [("a", "b"), ("b", "a"), ("b", "c")]


def reading(at, **utilization):
    """A reading with the utilization of links named by two letters (``ab`` is a->b)."""
    util = {(name[0], name[1]): value for name, value in utilization.items()}
    return Reading(at=at, start=at - 1.0, utilization=util, load_mbps={}, od_mbps=None)


def test_the_mlu_of_an_interval_is_that_of_the_mean_utilization():
    # two balanced links whose readings fluctuate in turn: each reading's busiest link is at 0.7,
    # the mean load of both is 0.5 (what the fluid model predicts)
    readings = [reading(1.0, ab=0.7, ba=0.1, bc=0.3), reading(2.0, ab=0.3, ba=0.1, bc=0.7)]
    mlu, mean_util = interval_mlu(readings, EDGES)
    assert mlu == pytest.approx(0.5)
    np.testing.assert_allclose(mean_util, [0.5, 0.1, 0.5])
    assert np.mean([r.mlu for r in readings]) == pytest.approx(0.7)  # the biased estimate


def test_links_no_reading_measured_count_as_idle_and_empty_readings_are_skipped():
    readings = [reading(1.0, ab=0.4), reading(2.0), reading(3.0, ab=0.6, bc=0.2)]
    mlu, mean_util = interval_mlu(readings, EDGES)
    assert mlu == pytest.approx(0.5)
    np.testing.assert_allclose(mean_util, [0.5, 0.0, 0.2])


def test_no_reading_with_utilization_gives_none():
    assert interval_mlu([], EDGES) is None
    assert interval_mlu([reading(1.0)], EDGES) is None


def test_one_poll_rule_gives_the_recorded_runs_their_poll_intervals():
    from lab.config import poll_interval_for
    from lab.emulate import EmulationConfig

    # the demo (10 s intervals: 2 s), the Mininet environment's runs (4 s: 1 s; 2 s: 0.5 s)
    assert [poll_interval_for(s) for s in (10.0, 4.0, 2.0, 0.5, 60.0)] == [2.0, 1.0, 0.5, 0.5, 2.0]
    assert EmulationConfig(interval_s=4.0).poll_s == 1.0
    assert EmulationConfig(interval_s=4.0, poll_interval_s=0.7).poll_s == 0.7


def test_replays_start_at_ten_o_clock_or_in_the_held_out_part():
    from lab.config import default_start
    from lab.mininet_train import default_start as mininet_start

    assert default_start("synthetic", 10) == default_start("synthetic:seed=3", 2000) == 120
    assert default_start("week.tm.npz", 2016) == 1612
    assert mininet_start("week.tm.npz", 10, history=12) == 13


def test_decisions_held_over_a_transient_fault_count_as_the_agents():
    from lab.emulate import decision_counts, sources_text

    decisions = [{"source": s, "reasons": r} for s, r in [
        ("agent", []), ("agent-held", ["decision slower than the 50 ms budget"]),
        ("fallback", ["input drift: x"]), ("agent", []), ("blend", [])]]
    counts = decision_counts(decisions)
    assert (counts["decisions"], counts["agent_installed"], counts["agent_held"],
            counts["agent_blend"]) == (5, 3, 1, 1)
    assert counts["agent_untrusted_reasons"] == ["decision slower than the 50 ms budget",
                                                 "input drift: x"]
    assert sources_text({"agent": 2, "agent-held": 1, "blend": 1, "fallback": 3}) == "a2,h1,b1,f3"


def test_the_demo_keeps_its_network_up_only_for_someone_at_a_terminal(monkeypatch):
    from lab.demo import keep_seconds

    assert keep_seconds(30.0) == 30.0 and keep_seconds(0.0) == 0.0
    with pytest.raises(ValueError, match="--keep must be >= 0"):
        keep_seconds(-1.0)
    for tty, expected in ((True, 180.0), (False, 0.0)):  # CI and scripts never wait
        monkeypatch.setattr("sys.stdin.isatty", lambda: tty)
        monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
        assert keep_seconds(None) == expected


def test_keep_up_waits_and_ctrl_c_ends_it_early(monkeypatch):
    import time

    from lab.emulate import keep_up

    class Bed:
        rest_url = "http://127.0.0.1:8080"

    said = []
    started = time.monotonic()
    keep_up(Bed(), 0.3, said.append)
    assert time.monotonic() - started >= 0.3 and "dashboard http://127.0.0.1:8080/" in said[0]

    def interrupted(seconds):
        raise KeyboardInterrupt
    monkeypatch.setattr(time, "sleep", interrupted)
    keep_up(Bed(), 60, said.append)  # returns: the testbed is then torn down as usual
    assert said[-1] == "stopping"
    keep_up(Bed(), 0, said.append)
    assert said[-1] == "stopping"  # nothing said when there is nothing to keep


def test_the_monitor_keeps_a_readings_window_when_it_missed_the_one_before():
    # On a loaded machine the monitor may read only every other statistics reading; the window
    # of the one it reads still starts at the controller's previous reading (it used to be
    # dropped as "start unknown", and a whole replay interval could end with no reading).
    from api.client import ControllerClient
    from benchmarks.dashboard import feed_interval, live_app, series_for, serve
    from lab.emulation import Monitor

    app = live_app("abilene", None, poll_interval_s=1.0)
    server, url = serve(app)
    try:
        matrices = series_for(app, 4)
        monitor = Monitor(ControllerClient(url), poll_s=1.0, n_paths=app.plane.view.state.path_set.n_paths)
        feed_interval(app, matrices[0])
        monitor.step()
        for m in matrices[1:3]:  # two readings, the monitor misses the first of them
            time.sleep(1.0)
            feed_interval(app, m)
        monitor.step()
        first, second = monitor.readings
        state = app.plane.view.state
        assert second.at == state.updated_at and second.start == state.previous_update_at
        assert second.start is not None and second.start > first.at
    finally:
        server.shutdown()

"""Traffic replay: the plan (rates, scaling, flow split, schedule files) and the paced agent."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from lab.emulate import fallback_mlu
from lab.replay import (
    WIRE_OVERHEAD,
    Host,
    ReplayPlan,
    choose_traffic_scale,
    collect_reports,
    interval_summary,
    run_agent,
)
from topologies.catalog import load_topology
from topologies.traffic import synthetic_traffic


@pytest.fixture(scope="module")
def abilene():
    return load_topology("abilene")


def test_rates_are_demand_times_traffic_scale_over_capacity_scale(abilene):
    tm = synthetic_traffic(abilene, steps=3, seed=1).tm
    plan = ReplayPlan.for_graph(abilene, tm, interval_s=10, traffic_scale=2.0,
                                capacity_scale=1000.0, host_prefix="x", switch_prefix="e")
    assert np.allclose(plan.rates_mbps, tm * 2.0 / 1000.0)
    assert np.allclose(plan.offered_tm, tm * 2.0)
    assert plan.hosts[0] == Host("x1", "10.0.1.1", "ATLAM5", "00:00:00:00:01:01")
    assert plan.wire_bytes == 1472 + WIRE_OVERHEAD == 1518


def test_split_samples_count_datagrams_per_interval_up_to_the_flows():
    """Two OD pairs: 0.1 Mbit/s sends 41.2 datagrams of 1518 bytes in 5 s (fewer than its 64
    flows), 1 Mbit/s sends 411.7 (capped at 64 flows); the mean is weighted by demand."""
    tm = np.zeros((1, 2, 2))
    tm[0, 0, 1], tm[0, 1, 0] = 100.0, 1000.0  # topology units, capacity scale 1000
    hosts = (Host("a", "10.0.1.1", "A"), Host("b", "10.0.2.1", "B"))
    plan = ReplayPlan(tm, ("A", "B"), hosts, 5.0, 1.0, 1000.0, flows=64)
    small = 0.1e6 / 8 / 1518 * 5
    assert plan.split_samples == pytest.approx((small * 0.1 + 64 * 1.0) / 1.1)
    assert ReplayPlan(tm, ("A", "B"), hosts, 5.0, 1.0, 100.0, flows=64).split_samples == 64
    assert ReplayPlan(tm * 0, ("A", "B"), hosts, 5.0, 1.0, 1000.0).split_samples == np.inf


def test_schedule_file_spreads_each_od_over_flows_per_segment(abilene, tmp_path):
    tm = synthetic_traffic(abilene, steps=2, seed=1).tm
    plan = ReplayPlan.for_graph(abilene, tm, interval_s=5, traffic_scale=1.0,
                                capacity_scale=1000.0, warmup_s=3, flows=12)
    files = plan.write_schedules(tmp_path, start_at=1000.0, token=7)
    assert sorted(files) == sorted(h.name for h in plan.hosts)
    schedule = json.loads(files["h1"].read_text())
    assert schedule["flows"] == 12 and schedule["segments_s"] == [3, 5, 5]
    assert schedule["start_at"] == 1000.0 and schedule["token"] == 7
    assert schedule["report"] == str(tmp_path / "h1.report.json")
    assert len(schedule["destinations"]) == 11  # every other node
    dest = next(d for d in schedule["destinations"] if d["name"] == "h5")
    # the warm-up replays the first matrix, then one segment per matrix
    expected = [tm[0, 0, 4], tm[0, 0, 4], tm[1, 0, 4]]
    assert np.allclose(dest["rates_mbps"], np.array(expected) / 1000, atol=1e-6)
    assert dest["ip"] == "10.0.5.1"


def test_traffic_scale_puts_the_fallbacks_mlu_in_range(abilene):
    tm = synthetic_traffic(abilene, steps=12, seed=0, start="20240101-1000").tm
    scale = choose_traffic_scale(fallback_mlu(abilene, tm))
    scaled = fallback_mlu(abilene, tm * scale)
    assert scaled.max() == pytest.approx(0.85)
    assert scaled.min() >= 0.5


def test_traffic_scale_centres_a_series_too_varied_for_the_range(abilene):
    tm = synthetic_traffic(abilene, steps=2, seed=0).tm
    tm = np.stack([tm[0], tm[0] * 3])  # MLU ratio 3 > 0.9 / 0.5
    scaled = fallback_mlu(abilene, tm * choose_traffic_scale(fallback_mlu(abilene, tm)))
    assert scaled.min() * scaled.max() == pytest.approx(0.5 * 0.9)


def test_bad_plans_are_refused(abilene):
    tm = np.zeros((1, 12, 12))
    for options in ({"flows": 0}, {"flows": 200}, {"payload": 9000}, {"interval_s": 0}):
        with pytest.raises(ValueError):
            ReplayPlan.for_graph(abilene, tm, **{"interval_s": 1, "traffic_scale": 1,
                                                 "capacity_scale": 1, **options})
    with pytest.raises(ValueError, match="no traffic"):
        choose_traffic_scale(fallback_mlu(abilene, tm))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _loopback_plan(rates_mbps, interval_s: float) -> ReplayPlan:
    """Two nodes on one machine: node 0 sends to node 1 = itself on 127.0.0.1."""
    tm = np.zeros((len(rates_mbps), 2, 2))
    tm[:, 0, 1] = rates_mbps
    hosts = (Host("a", "127.0.0.1", "A"), Host("b", "127.0.0.1", "B"))  # no aliases here
    return ReplayPlan(tm, ("A", "B"), hosts, interval_s, 1.0, 1.0, warmup_s=0.2, flows=4,
                      payload=500, port=_free_udp_port())


def test_the_agent_sends_what_the_plan_says_and_counts_what_it_receives(tmp_path):
    plan = _loopback_plan([2.0, 6.0], interval_s=0.6)
    schedule = plan.schedule(0, start_at=time.time() + 0.2, token=99,
                             report=tmp_path / "a.json")
    schedule["linger_s"] = 0.3
    report = run_agent(schedule)
    # the receiver of node 0 got its own datagrams: count them as node 1's
    report_b = {**report, "index": 1, "sent": [], "skipped": []}
    report_a = {**report, "received": []}
    counts = collect_reports(plan, [report_a, report_b])
    for interval in range(2):
        summary = interval_summary(plan, counts, interval)
        assert abs(summary["offered_error"]) < 0.05, summary
        assert summary["loss"] == 0.0
        assert summary["delivered_mbps"] == pytest.approx(summary["sent_mbps"])
    assert counts.sent_packets[2, 0, 1] > counts.sent_packets[1, 0, 1] * 2.5
    assert counts.send_errors == 0 and not counts.missing_reports


def test_the_agent_runs_as_a_module_and_writes_its_report(tmp_path):
    plan = _loopback_plan([1.0], interval_s=0.3)
    files = plan.write_schedules(tmp_path, start_at=time.time() + 0.5, token=5)
    done = subprocess.run([sys.executable, "-m", "lab.replay", str(files["a"])],
                          check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "a.report.json").read_text())
    assert report["host"] == "a" and report["sent"] and report["received"]
    assert report["ready_at"] < report["start_at"]


def test_each_flow_has_its_own_source_address_and_hosts_need_no_arp(abilene):
    """Open vSwitch's default SELECT hash ignores UDP ports: flows differ by source address."""
    plan = ReplayPlan.for_graph(abilene, np.zeros((1, 12, 12)), interval_s=1, traffic_scale=1,
                                capacity_scale=1000, flows=3, host_prefix="x")
    schedule = plan.schedule(0, start_at=0, token=1, report="r.json")
    assert schedule["sources"] == ["10.0.1.100", "10.0.1.101", "10.0.1.102"]
    commands = plan.host_setup_commands(0, "x1-eth0")
    assert commands[:3] == [f"ip addr replace 10.0.1.{100 + k}/32 dev x1-eth0" for k in range(3)]
    assert "ip neigh replace 10.0.2.1 lladdr 00:00:00:00:02:01 nud permanent dev x1-eth0" \
        in commands
    assert len(commands) == 3 + 11

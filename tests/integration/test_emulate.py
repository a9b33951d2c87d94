"""``ryute emulate`` end to end on a small network: replay, modes, measurements, clean-up.

A ring of five switches in Mininet, a tiny agent trained here, two phases (shadow, active) of
three short intervals each; the JSON must hold every measurement, and nothing the run started
may be left behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from lab.emulate import main
from lab.testbed import PROJECT_DIR, ovs_bridges

TOPOLOGY = "ring:n=5"
RUNS = PROJECT_DIR / "runs" / "tests"
"""Run folders (controller log, decision log, schedules, reports) stay here for inspection."""
PREFIX = "t"  # bridges t1..t5, hosts y1..y5: never clash with other tests' s*/h* or e*/x*


def replay_processes() -> list[int]:
    own = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().split(b"\0")
            except OSError:
                continue
            if b"lab.replay" in cmdline and any(b"/t-run/" in part for part in cmdline):
                own.append(int(pid))
    return own


def test_a_short_emulation_reports_every_phase_and_interval(ring_model, tmp_path, measure):
    out, plot = tmp_path / "emulate.json", tmp_path / "emulate.png"
    started = time.monotonic()
    code = main(["--topology", TOPOLOGY, "--traffic", "synthetic", "--interval", "4",
                 "--duration", "12", "--model", str(ring_model), "--phases", "shadow,active",
                 "--switch-prefix", PREFIX, "--host-prefix", "y", "--json", str(out),
                 "--plot", str(plot), "--run-dir", str(RUNS / f"emulate-{os.getpid()}" / "t-run")])
    elapsed = time.monotonic() - started
    assert code == 0
    result = json.loads(out.read_text())
    assert plot.stat().st_size > 10_000
    assert result["model_id"] and not result["fallback_only"]
    assert 0.5 <= max(result["fallback_predicted_mlu_plan"]) <= 0.9
    assert result["traffic_scale"] > 0 and result["intervals"] == 3
    assert list(result["phases"]) == ["shadow", "active"]
    for name, phase in result["phases"].items():
        summary = phase["summary"]
        assert len(phase["intervals"]) == 3
        for interval in phase["intervals"]:
            assert interval["readings"] >= 1, (name, interval)
            assert 0.2 < interval["measured_mlu"] < 1.2
            assert interval["predicted_mlu"]["fallback"] is not None
            assert interval["predicted_mlu"]["agent"] is not None  # the agent decides in both
            assert abs(interval["offered_error"]) < 0.05, interval
            assert interval["delivered_mbps"] > 0
        assert summary["loss"] is not None and summary["loss"] < 0.05
        assert summary["fidelity"]["readings"] >= 3
        assert not summary["missing_reports"]
    shadow = result["phases"]["shadow"]["summary"]
    active = result["phases"]["active"]["summary"]
    assert shadow["agent_installed"] == 0  # shadow mode never installs the agent
    assert all(d == "fallback" for i in result["phases"]["shadow"]["intervals"]
               for d in i["sources"])
    measure("emulate", {"elapsed_s": round(elapsed, 1),
                        "shadow_mlu": round(shadow["measured_mlu"], 3),
                        "active_mlu": round(active["measured_mlu"], 3),
                        "active_agent_decisions": active["agent_installed"],
                        "loss": [shadow["loss"], active["loss"]],
                        "link_error_median": [shadow["fidelity"]["link_error_median"],
                                              active["fidelity"]["link_error_median"]],
                        "mlu_error_median": [shadow["fidelity"]["mlu_error_median"],
                                             active["fidelity"]["mlu_error_median"]],
                        "offered_error": [shadow["offered_error_abs_mean"],
                                          active["offered_error_abs_mean"]]})
    assert not {f"{PREFIX}{i}" for i in range(1, 6)} & ovs_bridges()
    assert not replay_processes()


def test_ctrl_c_during_the_replay_leaves_nothing_behind(tmp_path):
    command = [sys.executable, "-m", "lab.emulate", "--topology", TOPOLOGY, "--model", "none",
               "--interval", "4", "--duration", "40", "--phases", "shadow",
               "--switch-prefix", PREFIX, "--host-prefix", "y",
               "--run-dir", str(RUNS / f"emulate-ctrl-c-{os.getpid()}" / "t-run")]
    # Ctrl-C in a terminal: SIGINT at its default disposition, even when the test run itself was
    # started in the background (a non-interactive shell starts background jobs with SIGINT
    # ignored, and an ignored SIGINT is inherited: Python would then never see it). Reset in a
    # small launcher that then becomes the command (no preexec_fn: fork() warnings in eventlet).
    launcher = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                "os.execv(sys.argv[1], sys.argv[1:])")
    process = subprocess.Popen([sys.executable, "-c", launcher, *command], cwd=PROJECT_DIR,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not replay_processes():
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
        assert replay_processes(), "the replay never started"
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert not {f"{PREFIX}{i}" for i in range(1, 6)} & ovs_bridges()
    assert not replay_processes()

"""The testbed always cleans up what it started, and only that."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from lab.testbed import Testbed, TestbedError, ovs_bridges, reap_dead_runs


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_a_failing_test_leaves_nothing_behind(tmp_path):
    testbed = Testbed("linear:n=3", run_dir=tmp_path)
    with pytest.raises(RuntimeError, match="boom"), testbed:
        assert testbed.bridges <= ovs_bridges()
        pids = [testbed.controller.pid] + [host.pid for host in testbed.net.hosts]
        assert all(alive(pid) for pid in pids)
        raise RuntimeError("boom")
    assert not testbed.bridges & ovs_bridges()
    assert not [pid for pid in pids if alive(pid)]
    assert not list(tmp_path.glob("*.json"))


def test_refuses_to_touch_a_bridge_that_is_not_its_own(tmp_path):
    subprocess.run(["ovs-vsctl", "add-br", "s2", "--", "set", "bridge", "s2",
                    "datapath_type=netdev"], check=True)
    try:
        with pytest.raises(TestbedError, match="not ours"):
            with Testbed("linear:n=3", run_dir=tmp_path):
                pass
        assert "s2" in ovs_bridges()
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", "s2"], check=True)


def test_a_killed_run_is_cleaned_up_by_the_next():
    # The default run folder: should this test die half-way, the next testbed cleans up.
    script = (
        "import sys, time; from lab.testbed import Testbed\n"
        "testbed = Testbed('linear:n=2')\n"
        "testbed.start()\n"
        "print(testbed.controller.pid, *[h.pid for h in testbed.net.hosts], flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in owner.stdout.readline().split()]
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    # The host shells may end with their owner (their stdin closes); the controller and the
    # bridges stay behind until someone cleans up.
    assert pids and alive(pids[0])
    assert {"s1", "s2"} <= ovs_bridges()
    assert len(reap_dead_runs()) == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]
    assert not {"s1", "s2"} & ovs_bridges()

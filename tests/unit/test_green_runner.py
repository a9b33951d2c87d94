"""The agent's runner on the eventlet hub (controller.app.green_runner), under eventlet's
monkey patching as in the running controller (a subprocess: patching is process-wide)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import eventlet
eventlet.monkey_patch()
import json
import threading
from controller.app import green_runner

ran = threading.Event()
def first():
    ran.set()
    return "first"

late = green_runner(first, 1e-9)  # the first use of the thread pool, and late
after = [green_runner(lambda: "next", 10.0) for _ in range(3)]
print(json.dumps([late.error, ran.wait(10), [(o.decision, o.error) for o in after]]))
"""


def test_a_late_first_decision_does_not_leave_the_agent_busy_for_ever():
    # a late call finishes in the background (it clears the decision loop's busy flag); but
    # eventlet sets its thread pool up on first use, yielding to the hub, and a timeout there
    # dropped the call before it was queued: the flag stayed set, and every later interval
    # said "previous agent decision still running" (issue 14)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    late_error, late_ran, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert late_error == "timeout" and late_ran
    assert after == [["next", None]] * 3


OFF_HUB = """
from os_ken.lib import hub
hub.patch(thread=True)  # exactly what os-ken's launcher patches
import json, time
import eventlet
from controller.app import off_hub

ticks = []
def ticker():
    while True:
        ticks.append(time.monotonic())
        eventlet.sleep(0.05)
eventlet.spawn(ticker)
eventlet.sleep(0.1)
started = time.monotonic()
answer = off_hub(time.sleep, 1.0, deadline_s=10, what="model")  # a slow, blocking model read
during = [t for t in ticks if started < t < started + 1.0]
late = None
try:
    off_hub(time.sleep, 2.0, deadline_s=0.3, what="model.zip")
except ValueError as error:
    late = str(error)
print(json.dumps([len(during), late]))
"""


def test_model_files_are_read_off_the_hub_under_os_kens_own_patching():
    # os-ken patches threads only; the check used to look at socket, so the read ran on the
    # hub and stalled OpenFlow and REST for as long as it took
    done = subprocess.run([sys.executable, "-c", OFF_HUB], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    ticks_during, late = json.loads(done.stdout.strip().splitlines()[-1])
    assert ticks_during >= 10  # the hub ran its green threads (every 50 ms) during the read
    assert late == "model.zip: not done within 0.3 s, given up"

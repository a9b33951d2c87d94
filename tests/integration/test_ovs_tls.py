"""OpenFlow over TLS with Open vSwitch (issue 17): a bridge told ``ssl:HOST:PORT`` connects to
a controller started with ``--ofp-tls-cert/--ofp-tls-key/--ofp-tls-ca``; one whose certificate
another CA signed does not. Uses its own bridge (``rtls0``) and restores Open vSwitch's SSL
settings (``ovs-vsctl set-ssl`` is global) at the end."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.tls_files import make_tls_files

ROOT = Path(__file__).resolve().parents[2]
BRIDGE = "rtls0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _vsctl(*args: str) -> str:
    return subprocess.run(["ovs-vsctl", "--timeout=10", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def controller(tmp_path, tls):
    ofp_port, rest_port = _free_port(), _free_port()
    log = tmp_path / "controller.log"
    command = [sys.executable, "-m", "lab.cli", "controller", "--topology", "linear:n=2",
               "--ofp-host", "127.0.0.1", "--ofp-port", str(ofp_port),
               "--rest-port", str(rest_port), "--ofp-tls-cert", str(tls.controller.cert),
               "--ofp-tls-key", str(tls.controller.key), "--ofp-tls-ca", str(tls.ca)]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=tmp_path)
    yield ofp_port, rest_port, log
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def bridge():
    """``rtls0`` (datapath id 1, userspace, OpenFlow 1.3, fail-mode secure); SSL as it was."""
    before = _vsctl("get-ssl")
    _vsctl("--may-exist", "add-br", BRIDGE, "--", "set", "bridge", BRIDGE,
           "datapath_type=netdev", "protocols=OpenFlow13", "fail-mode=secure",
           "other-config:datapath-id=0000000000000001")
    yield BRIDGE
    _vsctl("--if-exists", "del-br", BRIDGE)
    if not before:
        _vsctl("del-ssl")


def _switches(rest_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/te/v1/status",
                                    timeout=2) as response:
            return int(json.loads(response.read())["switches"])
    except OSError:
        return -1


def _connected(rest_port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _switches(rest_port) == 1:
            return True
        time.sleep(0.5)
    return False


def test_a_switch_connects_over_tls(controller, bridge, tls):
    ofp_port, rest_port, log = controller
    _vsctl("set-ssl", str(tls.switch.key), str(tls.switch.cert), str(tls.ca))
    _vsctl("set-controller", bridge, f"ssl:127.0.0.1:{ofp_port}")
    assert _connected(rest_port, 30), log.read_text()
    assert "(TLS, switch certificates checked)" in log.read_text()
    # Open vSwitch's side too (it writes the connection state to its database every few s)
    deadline, ours = time.monotonic() + 20, ""
    while time.monotonic() < deadline and not ours.endswith("true"):
        time.sleep(0.5)
        ours = _vsctl("--columns=is_connected", "find", "controller",
                      f'target="ssl:127.0.0.1:{ofp_port}"')
    assert ours.split(":")[-1].strip() == "true", ours


def test_a_switch_certified_by_another_ca_is_refused(controller, bridge, tls):
    ofp_port, rest_port, log = controller
    _vsctl("set-ssl", str(tls.stranger.key), str(tls.stranger.cert), str(tls.ca))
    _vsctl("set-controller", bridge, f"ssl:127.0.0.1:{ofp_port}")
    assert not _connected(rest_port, 8), log.read_text()
    assert _switches(rest_port) == 0  # the controller answers: it refused the switch

"""A real controller process as an operator meets it (issue 17): Ctrl-C (SIGINT) and SIGTERM
end it at once with a shutdown line, under ``ryute controller`` and ``osken-manager``; the
adapter child ends with its parent, even a killed one; a model that cannot be loaded, an
OpenFlow address in ``$RYUTE_CONFIG`` and the token of ``--adapt``."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.conftest import ROOT, ControllerProcess, default_sigint, free_port

STOP_WITHIN_S = 5.0


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.1)
    return _gone(pid)


def _stop_with(ctl: ControllerProcess, signum: int) -> float:
    started = time.monotonic()
    ctl.process.send_signal(signum)
    try:
        ctl.process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {STOP_WITHIN_S} s after {signal.Signals(signum).name}"
                             f":\n{ctl.output()}") from None
    return time.monotonic() - started


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_controller_at_once_with_a_shutdown_line(controller, signum):
    ctl = controller().wait_ready()
    _stop_with(ctl, signum)
    name = signal.Signals(signum).name
    assert f"ryute controller stopping ({name})" in ctl.output()
    assert "ryute controller stopped" in ctl.output()
    assert "Traceback" not in ctl.output()


def test_ctrl_c_stops_it_with_a_rest_connection_open(controller):
    """An idle keep-alive connection must not hold the shutdown for the REST timeout."""
    ctl = controller().wait_ready()
    with socket.create_connection(("127.0.0.1", ctl.rest_port)) as sock:
        sock.sendall(b"GET /te/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        _stop_with(ctl, signal.SIGINT)


def _osken_manager(tmp_path: Path, config: str) -> ControllerProcess:
    (tmp_path / "ryute.toml").write_text(config)
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RYUTE_API_TOKEN",)}
    environment.update(PYTHONPATH=str(ROOT), RYUTE_CONFIG=str(tmp_path / "ryute.toml"))
    manager = Path(sys.executable).with_name("osken-manager")
    log = tmp_path / "osken-manager.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(manager), str(ROOT / "controller" / "app.py")],
                                   cwd=tmp_path, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT, preexec_fn=default_sigint)
    rest_port = int(re.search(r"rest_port = (\d+)", config).group(1))  # type: ignore[union-attr]
    ofp_port = int(re.search(r"ofp_port = (\d+)", config).group(1))  # type: ignore[union-attr]
    return ControllerProcess(process, ofp_port, rest_port, log)


def test_ctrl_c_stops_it_under_osken_manager(tmp_path):
    ctl = _osken_manager(tmp_path, f'topology = "abilene"\nofp_host = "127.0.0.1"\n'
                                   f'ofp_port = {free_port()}\nrest_port = {free_port()}\n')
    try:
        ctl.wait_ready()
        _stop_with(ctl, signal.SIGINT)
        assert "ryute controller stopped" in ctl.output()
    finally:
        ctl.stop()


def test_osken_manager_listens_where_the_config_file_says(tmp_path):
    """``ofp_host``/``ofp_port`` of ``$RYUTE_CONFIG`` are honoured: a switch connecting there
    is greeted with an OpenFlow 1.3 HELLO."""
    ofp_port = free_port()
    ctl = _osken_manager(tmp_path, f'topology = "abilene"\nofp_host = "127.0.0.1"\n'
                                   f'ofp_port = {ofp_port}\nrest_port = {free_port()}\n')
    try:
        ctl.wait_ready()
        with socket.create_connection(("127.0.0.1", ofp_port), timeout=5) as sock:
            hello = sock.recv(8)
        assert hello[:2] == b"\x04\x00", hello  # version 1.3, type HELLO
        assert f"OpenFlow listening on 127.0.0.1:{ofp_port}" in ctl.output()
    finally:
        ctl.stop()


def _adapter_pid(ctl: ControllerProcess, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"adaptation started \(pid (\d+)\)", ctl.output())
        if found:
            return int(found.group(1))
        assert ctl.process.poll() is None, ctl.output()
        time.sleep(0.2)
    raise AssertionError(f"no adapter started:\n{ctl.output()}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_the_adapter_ends_with_its_controller(controller, signum):
    """Stopped (SIGINT) or killed (SIGKILL, no clean-up can run), the controller takes its
    adapter with it within seconds, even while the adapter is still loading its model."""
    ctl = controller("--model", "default", "--adapt").wait_ready(timeout_s=60)
    adapter = _adapter_pid(ctl)
    ctl.process.send_signal(signum)
    ctl.wait_exit(timeout_s=STOP_WITHIN_S)
    assert _wait_gone(adapter, STOP_WITHIN_S), f"adapter {adapter} outlived its controller"


def test_a_model_that_cannot_be_loaded_under_osken_manager_is_one_line(tmp_path):
    ctl = _osken_manager(tmp_path, f'topology = "abilene"\nmodel = "absent.zip"\n'
                                   f'ofp_port = {free_port()}\nrest_port = {free_port()}\n')
    try:
        assert ctl.wait_exit() != 0
        last = ctl.output().strip().splitlines()[-1]
        assert "absent.zip" in last and "--allow-fallback-only" in last
        assert "Traceback" not in ctl.output()
    finally:
        ctl.stop()


@pytest.mark.slow
def test_adapt_on_loopback_says_where_its_token_is(controller):
    """--adapt needs a token for its own model changes; the operator is told where it is, and
    it is what ``ryute mode`` then needs."""
    ctl = controller("--model", "default", "--adapt").wait_ready(timeout_s=60)
    found = re.search(r"it is in (\S+), e\.g\. 'ryute mode active --token", ctl.output())
    assert found, ctl.output()
    token_file = ctl.log.parent / found.group(1)
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert ctl.call("/te/v1/mode", "PUT", {"mode": "active"})[0] == 401
    status, answer = ctl.call("/te/v1/mode", "PUT", {"mode": "active"},
                              {"Authorization": f"Bearer {token}"})
    assert (status, answer["mode"]) == (200, "active")
    assert token not in ctl.output()  # in the file, not in the log

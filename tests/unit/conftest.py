"""Real controller processes on loopback, without switches, for the tests of the edges.

``ryute controller`` is started as an operator would start it (same entry point, same
environment variables), on free ports, and stopped by its pid at the end of the test.
"""
from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_sigint() -> None:
    """In the child: Ctrl-C's default, as in a terminal. A test run started in the background
    of a shell ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class ControllerProcess:
    process: subprocess.Popen
    ofp_port: int
    rest_port: int
    log: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 30.0) -> ControllerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"controller exited {self.process.returncode}:\n"
                                     f"{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/te/v1/status", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"controller not ready in {timeout_s} s:\n{self.output()}")

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        """The exit code of a controller expected to refuse to start."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"controller still running after {timeout_s} s:\n"
                                 f"{self.output()}") from None

    def call(self, path: str, method: str = "GET", body: object = None,
             headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> tuple[int, dict]:
        """(status, JSON answer) of one request to the controller's REST API."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_controller(folder: Path, started: list[ControllerProcess], *args: str,
                     env: dict[str, str] | None = None, ofp_port: int | None = None,
                     rest_port: int | None = None, topology: str = "abilene",
                     ofp_host: str = "127.0.0.1") -> ControllerProcess:
    """``ryute controller`` (OpenFlow and REST on loopback, free ports unless given), its log
    and working directory in ``folder``; appended to ``started``."""
    ofp_port = ofp_port or free_port()
    rest_port = rest_port if rest_port is not None else free_port()
    command = [sys.executable, "-m", "lab.cli", "controller", "--topology", topology,
               "--ofp-host", ofp_host, "--ofp-port", str(ofp_port),
               "--rest-port", str(rest_port), *args]
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("RYUTE_API_TOKEN", "RYUTE_CONFIG")}
    environment.update(PYTHONPATH=str(ROOT), **(env or {}))
    log = folder / f"controller-{len(started)}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=folder, env=environment, stdout=out,
                                   stderr=subprocess.STDOUT, preexec_fn=default_sigint)
    started.append(ControllerProcess(process, ofp_port, rest_port, log, command))
    return started[-1]


@pytest.fixture
def controller(tmp_path):
    """``controller(*args, env=..., ofp_port=..., rest_port=...)`` starts ``ryute controller``
    (topology abilene, OpenFlow and REST on loopback, free ports unless given)."""
    started: list[ControllerProcess] = []
    yield functools.partial(start_controller, tmp_path, started)
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def module_controller(tmp_path_factory):
    """Like ``controller``, for the controllers a whole test module shares."""
    started: list[ControllerProcess] = []
    yield functools.partial(start_controller, tmp_path_factory.mktemp("controller"), started)
    for process in started:
        process.stop()

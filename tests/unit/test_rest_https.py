"""HTTPS for the REST API (issue 17) against a real ``ryute controller`` process: a Python
``ssl`` client and the ControllerClient (with a CA file) get answers, the token is still
required for changes, plain HTTP on that port is refused (a 400 saying so, in plain HTTP),
and unusable files refuse to start."""
from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from api import endpoints
from api.client import ApiError, ControllerClient
from tests.tls_files import make_tls_files

TOKEN = "https-test-token"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https(module_controller, tls):
    ctl = module_controller("--rest-tls-cert", str(tls.controller.cert),
                            "--rest-tls-key", str(tls.controller.key),
                            env={"RYUTE_API_TOKEN": TOKEN})
    url = f"https://127.0.0.1:{ctl.rest_port}"
    client = ControllerClient(url, TOKEN, timeout_s=2, ca_file=str(tls.ca))
    deadline = time.monotonic() + 30
    while True:
        try:
            client.status()
            return ctl, url
        except ApiError:
            if ctl.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no HTTPS answer:\n{ctl.output()}") from None
            time.sleep(0.2)


def test_a_python_ssl_client_gets_the_status(https, tls):
    ctl, _ = https
    context = ssl.create_default_context(cafile=str(tls.ca))
    with socket.create_connection(("127.0.0.1", ctl.rest_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            sock.sendall(f"GET {endpoints.STATUS.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         "Connection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["mode"] == "shadow"
    assert f"REST API on https://127.0.0.1:{ctl.rest_port}{endpoints.OPENAPI.path}" in ctl.output()


def test_the_client_with_a_ca_file_and_the_token_still_required(https, tls):
    _, url = https
    anonymous = ControllerClient(url, ca_file=str(tls.ca))
    assert anonymous.status()["mode"] == "shadow"
    with pytest.raises(ApiError) as refused:
        anonymous.set_mode("active")
    assert refused.value.status == 401
    with pytest.raises(ApiError) as refused:
        ControllerClient(url, "wrong", ca_file=str(tls.ca)).set_mode("active")
    assert refused.value.status == 403
    client = ControllerClient(url, TOKEN, ca_file=str(tls.ca))
    assert client.set_mode("active")["mode"] == "active"
    assert client.set_mode("shadow")["mode"] == "shadow"


def test_a_certificate_the_client_does_not_trust_is_one_line(https, tls):
    _, url = https
    with pytest.raises(ApiError) as refused:
        ControllerClient(url).status()  # the system's CAs did not sign the test CA
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ApiError) as refused:
        ControllerClient(url, ca_file=str(tls.controller.key.parent / "absent.pem"))
    assert str(refused.value).startswith("CA file ") and "cannot use it" in str(refused.value)


def test_plain_http_on_the_https_port_is_refused_in_plain_words(https, tls):
    ctl, url = https
    with pytest.raises(ApiError) as refused:
        ControllerClient(f"http://127.0.0.1:{ctl.rest_port}", timeout_s=5).status()
    assert refused.value.status == 400
    assert refused.value.reason == "this port speaks HTTPS only: use https://"
    with socket.create_connection(("127.0.0.1", ctl.rest_port), timeout=5) as plain:
        plain.sendall(f"PUT {endpoints.SET_MODE.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Length: 17\r\n\r\n{\"mode\":\"active\"}".encode())
        answer = plain.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"speaks HTTPS only" in answer
    assert ControllerClient(url, ca_file=str(tls.ca)).status()["mode"] == "shadow"  # still up
    assert "Traceback" not in ctl.output()


def test_ryute_status_over_https(https, tls):
    _, url = https
    done = subprocess.run([sys.executable, "-m", "lab.cli", "status", "--url", url],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "RYUTE_CA_FILE": str(tls.ca)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mode        shadow")


@pytest.mark.parametrize("case", ["key of another certificate", "missing", "half", "adapt"])
def test_unusable_https_files_refuse_to_start_in_one_line(controller, tls, tmp_path, case):
    args = {"key of another certificate": ["--rest-tls-cert", str(tls.controller.cert),
                                           "--rest-tls-key", str(tls.switch.key)],
            "missing": ["--rest-tls-cert", str(tmp_path / "absent.pem"),
                        "--rest-tls-key", str(tls.controller.key)],
            "half": ["--rest-tls-key", str(tls.controller.key)],
            "adapt": ["--rest-tls-cert", str(tls.controller.cert), "--rest-tls-key",
                      str(tls.controller.key), "--model", "default", "--adapt"]}[case]
    ctl = controller(*args)
    assert ctl.wait_exit() == 2
    last = ctl.output().strip().splitlines()[-1]
    expected = {"half": "rest_tls_cert and rest_tls_key go together",
                "adapt": "adapt publishes over plain HTTP on loopback: not with rest_tls_cert"
                }.get(case, "REST HTTPS: cannot use")
    assert expected in last and len(ctl.output().strip().splitlines()) == 1, ctl.output()

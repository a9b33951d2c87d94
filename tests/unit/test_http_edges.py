"""HTTP at the edges of a real ``ryute controller`` (issue 15, Low): raw requests over a
socket, as odd clients send them; every refusal a JSON error, nothing changed by it."""
from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import pytest

from api import endpoints

TOKEN = "http-edge-token-0123456789"
MODE = b'{"mode": "active"}'


@pytest.fixture(scope="module")
def ctl(module_controller):
    return module_controller(env={"RYUTE_API_TOKEN": TOKEN}).wait_ready()


@pytest.fixture(autouse=True)
def back_to_shadow(ctl):
    yield
    ctl.call("/te/v1/mode", "PUT", {"mode": "shadow"}, {"Authorization": f"Bearer {TOKEN}"})


def raw(port: int, head: str, body: bytes = b"") -> tuple[int, str, dict]:
    """(status, Content-Type, JSON body) of one request written byte for byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
    try:
        answer = json.loads(data)
    except ValueError:
        raise AssertionError(f"{response.status}: not JSON: {data[:200]!r}") from None
    return response.status, response.getheader("Content-Type", ""), answer


def put_mode(*headers: str) -> str:
    return "\r\n".join(["PUT /te/v1/mode HTTP/1.1", "Host: localhost",
                        f"Authorization: Bearer {TOKEN}", "Content-Type: application/json",
                        *headers, ""])


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def mode(ctl) -> str:
    return ctl.call("/te/v1/mode")[1]["mode"]


def test_a_valid_chunked_body_is_accepted(ctl):
    status, _, answer = raw(ctl.rest_port, put_mode("Transfer-Encoding: chunked"),
                            chunked(MODE[:7], MODE[7:]))
    assert (status, answer["mode"]) == (200, "active")


def test_a_chunked_body_beyond_the_limit_or_malformed_is_refused(ctl):
    status, _, answer = raw(ctl.rest_port, put_mode("Transfer-Encoding: chunked"),
                            chunked(b" " * 40_000, b" " * 40_000, MODE))
    assert status == 413 and "chunked body beyond" in answer["error"]
    status, _, answer = raw(ctl.rest_port, put_mode("Transfer-Encoding: chunked"),
                            b"zz\r\n" + MODE + b"\r\n0\r\n\r\n")
    assert status == 400 and "bad chunked body" in answer["error"]
    assert mode(ctl) == "shadow"


@pytest.mark.parametrize("headers, message", [
    ((f"Content-Length: {len(MODE)}", f"Content-Length: {len(MODE)}"),
     "more than one Content-Length header"),
    ((f"Content-Length: {len(MODE)}", "Content-Length: 2"), "more than one Content-Length"),
    (("Content-Length: 1e3",), "Content-Length must be a non-negative integer"),
    ((f"Content-Length: {len(MODE)}", "Transfer-Encoding: chunked"),
     "Content-Length and Transfer-Encoding together"),
    (("Transfer-Encoding: gzip",), "only a single 'chunked'"),
    (("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), "only a single 'chunked'"),
])
def test_an_ambiguous_body_length_is_a_json_400_and_changes_nothing(ctl, headers, message):
    status, content_type, answer = raw(ctl.rest_port, put_mode(*headers), MODE)
    assert (status, content_type) == (400, "application/json") and message in answer["error"]
    assert mode(ctl) == "shadow"


def test_a_request_line_too_long_is_a_json_414(ctl):
    status, content_type, answer = raw(
        ctl.rest_port, f"GET /te/v1/status?x={'a' * 9000} HTTP/1.1\r\nHost: localhost\r\n")
    assert (status, content_type) == (414, "application/json")
    assert "request line longer than 8192 bytes" in answer["error"]


@pytest.mark.parametrize("headers, message", [
    ([f"X-{i}: {i}" for i in range(120)], "Too many headers"),
    ([f"X-Long: {'a' * 9000}"], "a header line of 8192 bytes or more"),
    ([f"X-{i}: {'a' * 8000}" for i in range(10)], "headers larger than 65536 bytes"),
])
def test_headers_too_large_are_a_json_431(ctl, headers, message):
    head = "\r\n".join(["GET /te/v1/status HTTP/1.1", "Host: localhost", *headers, ""])
    status, content_type, answer = raw(ctl.rest_port, head)
    assert (status, content_type) == (431, "application/json") and message in answer["error"]


def test_a_malformed_request_line_is_json(ctl):
    status, content_type, answer = raw(ctl.rest_port, "GET /te/v1/status HTTP/9.x\r\n")
    assert status == 400 and content_type == "application/json" and answer["error"]


def test_the_controller_still_serves_after_the_odd_requests(ctl):
    assert ctl.process.poll() is None and ctl.call("/te/v1/status")[0] == 200
    assert "Traceback" not in ctl.output()


def test_heavy_reads_are_bounded_pages(ctl):
    """``?limit=10000`` from many clients once held the hub that also serves OpenFlow."""
    status, answer = ctl.call("/te/v1/decisions?limit=10000")
    assert status == 400 and f"limit must be in 1..{endpoints.DECISIONS_PAGE_MAX}" in answer["error"]
    status, answer = ctl.call(f"/te/v1/decisions?limit={endpoints.DECISIONS_PAGE_MAX}")
    assert status == 200 and answer["next_before"] is None
    assert ctl.call("/te/v1/decisions?before=-1")[0] == 400


# -- the generated token stays off command lines ---------------------------------------------
def test_the_testbed_hands_its_token_to_the_controller_in_the_environment(tmp_path):
    """``ps`` shows every user the command lines; the lab's token is in the environment."""
    from lab.testbed import Testbed

    token = "testbed-env-token-0123456789"
    testbed = Testbed("abilene", api_token=token, log_dir=tmp_path, run_dir=tmp_path)
    testbed._start_controller()
    try:
        pid = testbed.controller.pid
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert token.encode() not in command and b"--api-token" not in command
        assert f"RYUTE_API_TOKEN={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
        assert testbed.api.set_mode("external")["mode"] == "external"  # it holds the token
    finally:
        testbed._stop_controller()


def test_no_lab_module_puts_a_token_on_a_command_line():
    root = Path(__file__).resolve().parents[2]
    found = [str(path.relative_to(root)) for package in ("lab", "benchmarks")
             for path in (root / package).rglob("*.py") if '"--api-token"' in path.read_text()]
    assert not found



def test_a_method_not_allowed_says_which_are(ctl):
    head = "DELETE /te/v1/mode HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n"
    with socket.create_connection(("127.0.0.1", ctl.rest_port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = json.loads(response.read())
    assert (response.status, response.getheader("Allow")) == (405, "GET, PUT")
    assert "allowed: GET, PUT" in answer["error"]

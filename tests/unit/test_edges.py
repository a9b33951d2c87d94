"""The controller's edges against a real ``ryute controller`` process (issue 15): tokens,
ports, model files and odd requests, each refused with one clear line."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

TOKEN = "edge-token-0123456789abcdef"


# -- tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "   ", "\x0c"])
def test_an_empty_token_in_the_environment_is_refused_at_start(controller, value):
    ctl = controller("--model", "default", env={"RYUTE_API_TOKEN": value})
    assert ctl.wait_exit() == 2
    lines = ctl.output().strip().splitlines()
    assert lines and "api_token" in lines[-1] and "Traceback" not in ctl.output()


def test_an_empty_token_in_the_config_file_is_refused_at_start(controller, tmp_path):
    config = tmp_path / "ryute.toml"
    config.write_text('[controller]\napi_token = ""\n')
    ctl = controller("--config", str(config), "--rest-host", "0.0.0.0")
    assert ctl.wait_exit() == 2
    assert "api_token is set but empty" in ctl.output().strip().splitlines()[-1]


def test_an_empty_token_on_the_command_line_is_refused_at_start(controller):
    ctl = controller("--api-token", "")
    assert ctl.wait_exit() == 2
    assert "api_token is set but empty" in ctl.output()


HEADERS = ["Bearer \x0c", "Bearer \xa0", "Bearer \x85", "Bearer ", f"Bearer {TOKEN}\x0c",
           f"Bearer {TOKEN}\x85", f"Bearer {TOKEN}\xa0", f"Bearer \x0b{TOKEN}", f"Bearer {TOKEN}x"]


def test_only_the_exact_header_changes_anything(controller):
    """The header is compared as sent: what ``str.strip`` would remove still counts."""
    ctl = controller(env={"RYUTE_API_TOKEN": TOKEN}).wait_ready()
    for header in HEADERS:
        for path, body in (("/te/v1/mode", {"mode": "external"}),
                           ("/te/v1/model", {"path": "/nonexistent.zip"})):
            status, answer = ctl.call(path, "PUT", body, {"Authorization": header})
            assert status in (401, 403), (path, header, answer)
    assert ctl.call("/te/v1/mode")[1]["mode"] == "shadow"
    status, answer = ctl.call("/te/v1/mode", "PUT", {"mode": "external"},
                              {"Authorization": f"Bearer {TOKEN}"})
    assert (status, answer["mode"]) == (200, "external")


# -- ports -----------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", ["ofp", "rest"])
def test_a_second_controller_on_a_port_in_use_refuses_to_start(controller, shared):
    """Split brain: the second one must not share the port (eventlet sets SO_REUSEPORT)."""
    first = controller().wait_ready()
    ports = {"ofp_port": first.ofp_port} if shared == "ofp" else {"rest_port": first.rest_port}
    second = controller(**ports)
    assert second.wait_exit() == 2
    port = ports.popitem()[1]
    kind = "OpenFlow" if shared == "ofp" else "REST"
    last = second.output().strip().splitlines()[-1]
    assert f"{kind} port {port} on 127.0.0.1 is already in use" in last
    assert "Traceback" not in second.output()
    assert first.process.poll() is None and first.call("/te/v1/status")[0] == 200
    assert openflow_hello(first.ofp_port)[:2] == b"\x04\x00"  # OpenFlow 1.3 HELLO


def openflow_hello(port: int) -> bytes:
    """The first 8 bytes the controller sends on a new OpenFlow connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.recv(8)


@pytest.mark.parametrize("host", ["999.1.1.1", "not a host"])
def test_a_bad_openflow_address_refuses_to_start(controller, host):
    ctl = controller(ofp_host=host)
    assert ctl.wait_exit() == 2
    last = ctl.output().strip().splitlines()[-1]
    assert f"cannot listen for OpenFlow on {host}:" in last and "Traceback" not in ctl.output()


# -- odd requests ----------------------------------------------------------------------------
def test_a_deeply_nested_body_is_a_400_not_a_500(controller):
    ctl = controller(env={"RYUTE_API_TOKEN": TOKEN}).wait_ready()
    auth = {"Authorization": f"Bearer {TOKEN}"}


    for body in (b"[" * 2000, b'{"mode": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"):
        request = urllib.request.Request(ctl.url + "/te/v1/mode", data=body, method="PUT",
                                         headers=auth)
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("accepted")
        except urllib.error.HTTPError as error:
            assert error.code == 400 and "nested too deeply" in json.loads(error.read())["error"]
    assert "RecursionError" not in ctl.output() and "Traceback" not in ctl.output()


def test_the_loopback_api_answers_only_requests_addressed_to_loopback(controller):
    """DNS rebinding: a web page whose name resolves to 127.0.0.1 sends its own name as Host."""
    ctl = controller().wait_ready()
    for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "[::2]"):
        status, answer = ctl.call("/te/v1/status", headers={"Host": host})
        assert status == 403 and "not a loopback name" in answer["error"], host
        status, _ = ctl.call("/te/v1/mode", "PUT", {"mode": "active"}, {"Host": host})
        assert status == 403
    assert ctl.call("/te/v1/mode")[1]["mode"] == "shadow"
    for host in ("localhost", f"localhost:{ctl.rest_port}", "127.0.0.1", "[::1]:80"):
        assert ctl.call("/te/v1/status", headers={"Host": host})[0] == 200, host


def test_idle_connections_are_closed_after_the_rest_timeout(controller, tmp_path):
    """Slow-loris: a connection that sends nothing does not hold the server forever."""
    import time

    config = tmp_path / "ryute.toml"
    config.write_text("rest_timeout_s = 1.0\n")
    ctl = controller("--config", str(config)).wait_ready()
    with socket.create_connection(("127.0.0.1", ctl.rest_port), timeout=10) as sock:
        sock.sendall(b"GET /te/v1/status HTTP/1.1\r\nHost: localhost\r\n")  # never finished
        started = time.monotonic()
        sock.recv(1024)  # b"" once the server closes; a TimeoutError after 10 s if it never does
        closed_after = time.monotonic() - started
    assert closed_after < 5
    assert ctl.call("/te/v1/status")[0] == 200

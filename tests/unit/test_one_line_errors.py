"""Odd answers and odd files give one line and exit code 2, never a traceback (issue 15)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from controller.cli import main


class Impostor(BaseHTTPRequestHandler):
    """A server on the controller's URL that answers something else."""
    body = b"{}"

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_PUT = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def impostor():
    server = HTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "ftp//nowhere", "http://[::1"])
def test_a_bad_url_is_one_line(url, capsys):
    for command in (["status"], ["decisions"], ["mode", "active"]):
        assert "bad --url" in one_line_error([*command, "--url", url], capsys)


@pytest.mark.parametrize("body, message", [
    (b'{"hello": 1}', "not the answer of a ryute controller"),
    (b'{"health": [], "decisions": 3, "mode": {}}', "not the answer of a ryute controller"),
    (b"[1, 2]", "JSON that is not an object"),
    (b"<html>hello</html>", "not JSON"),
    (b"[" * 100_000, "not JSON"),
])
def test_another_server_is_one_line(impostor, body, message, capsys):
    impostor.RequestHandlerClass.body = body
    url = f"http://127.0.0.1:{impostor.server_port}"
    for command in (["status"], ["decisions"], ["mode", "active", "--token", "t"]):
        assert message in one_line_error([*command, "--url", url], capsys)


@pytest.mark.parametrize("record, message", [
    ({"seq": 1, "predicted_mlu": {"fallback": "high", "agent": 0.5}}, "not a number"),
    ({"seq": 1, "predicted_mlu": {"fallback": 0.4}, "measured_mlu": [1]}, "not a number"),
    ({"predicted_mlu": {"fallback": 0.4, "agent": 0.5}}, "no integer seq"),
    ({"seq": 1, "predicted_mlu": {"fallback": 0.4}, "reasons": "stale"}, "list of strings"),
    ([1], "not a JSON object"),
    ({"seq": 1, "predicted_mlu": [0.4]}, "no predicted_mlu.fallback"),
])
def test_a_shadow_report_of_odd_records_is_one_line(tmp_path, record, message, capsys):
    log = tmp_path / "decisions.jsonl"
    good = {"seq": 0, "predicted_mlu": {"fallback": 0.4, "agent": 0.3}, "reasons": []}
    log.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
    for extra in ([], ["--json"], ["--plot", str(tmp_path / "p.png")]):
        err = one_line_error(["shadow-report", str(log), *extra], capsys)
        assert f"{log}:2: not a decision record (" in err and message in err


def test_a_shadow_report_of_good_records_still_works(tmp_path, capsys):
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps({"seq": i, "predicted_mlu": {"fallback": 0.4, "agent": 0.3},
                                       "measured_mlu": 0.35, "reasons": []}) + "\n"
                           for i in range(3)))
    assert main(["shadow-report", str(log), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agent_better"] == 3

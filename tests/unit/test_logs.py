"""Structured logs: ``ryute --log-format json`` writes one parseable JSON object per line."""
import json
import logging

from controller import logs


def test_json_lines_carry_level_logger_message_and_exception(capsys):
    logs.configure("INFO", "json")
    log = logging.getLogger("ryute.test")
    log.info("link %s down", "A -> B")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "ryute.test"
    assert lines[0]["message"] == "link A -> B down"
    assert "RuntimeError: boom" in lines[1]["exception"]
    logs.configure("WARNING", "text")

"""The controller's edges against a real ``ryute controller`` process (issue 15): tokens,
ports, model files and odd requests, each refused with one clear line."""
from __future__ import annotations

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

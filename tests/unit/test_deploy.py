"""What deploys ryute (issue 17) against what it deploys: the example configuration has every
option at its default, the systemd unit verifies and starts the real command, the Dockerfile
copies every package, and the LICENSE is the one pyproject.toml names."""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from controller.config import ControllerConfig
from controller.decisions import HealthConfig
from lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_file_is_the_license_pyproject_names():
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a pointer to it


def _example_keys() -> tuple[dict[str, str], set[str]]:
    """(key -> section of every set key, keys only shown commented out) of the example."""
    text = (DEPLOY / "ryute.toml").read_text()
    set_keys, section = {}, ""
    for line in text.splitlines():
        header = re.fullmatch(r"\[([\w.]+)\]", line.strip())
        if header:
            section = header.group(1)
        key = re.match(r"(\w+) = ", line)
        if key:
            assert key.group(1) not in set_keys, f"{key.group(1)} twice"
            set_keys[key.group(1)] = section
    commented = set(re.findall(r"^# (\w+) = ", text, flags=re.MULTILINE))
    return set_keys, commented


def test_the_example_config_has_every_option_at_its_default():
    """It cannot drift: a new field, a changed default or a renamed one fails here."""
    loaded = ControllerConfig.load(DEPLOY / "ryute.toml")
    assert loaded == ControllerConfig()
    set_keys, commented = _example_keys()
    fields = {f.name: f for f in dataclasses.fields(ControllerConfig) if f.name != "health"}
    none_default = {name for name, f in fields.items() if f.default is None}
    assert {k for k, s in set_keys.items() if s == "controller"} == set(fields) - none_default
    assert commented == none_default  # no TOML value for "none": shown, commented out
    health = {f.name for f in dataclasses.fields(HealthConfig)}
    assert {k for k, s in set_keys.items() if s == "controller.health"} == health


def test_the_commented_examples_of_the_config_are_valid_values(tmp_path):
    """Uncommented, every example value is accepted (mode active for the rollout ones)."""
    text = (DEPLOY / "ryute.toml").read_text()
    text = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    text = text.replace('mode = "shadow"', 'mode = "active"')
    (tmp_path / "all.toml").write_text(text)
    config = ControllerConfig.load(tmp_path / "all.toml")
    assert config.model == "default" and list(config.rollout_ingress or ()) == ["s1", "s2"]


def _unit() -> dict[str, str]:
    return dict(re.findall(r"^(\w+)=(.*)$", (DEPLOY / "ryute.service").read_text(),
                           flags=re.MULTILINE))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_systemd_unit_verifies(tmp_path):
    """systemd's own check, with ExecStart pointing at this checkout's ryute command."""
    ryute = Path(sys.executable).with_name("ryute")
    unit = (DEPLOY / "ryute.service").read_text().replace("/opt/ryute/.venv/bin/ryute", str(ryute))
    (tmp_path / "ryute.service").write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ryute.service")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_units_command_is_ryutes_and_reads_the_example_config(monkeypatch):
    unit = _unit()
    command = shlex.split(unit["ExecStart"])
    assert command[0] == "/opt/ryute/.venv/bin/ryute"
    args = build_parser().parse_args(command[1:])
    assert args.command == "controller" and args.log_format == "json"
    name, _, path = unit["Environment"].partition("=")
    assert (name, path) == ("RYUTE_CONFIG", "/etc/ryute/ryute.toml")
    monkeypatch.setenv("RYUTE_CONFIG", str(DEPLOY / "ryute.toml"))
    from controller.launcher import config_from_args
    assert config_from_args(args) == ControllerConfig(log_level=args.log_level)


def test_the_dockerfile_copies_every_package_and_runs_the_controller():
    text = (DEPLOY / "Dockerfile").read_text()
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ")}
    packages = {pattern.rstrip("*") for pattern in
                PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied
    for source in copied:
        assert (ROOT / source).exists(), source
    assert (ROOT / "deploy" / "ryute.toml").exists() and "deploy/ryute.toml" in text
    entry = json.loads(re.search(r"^ENTRYPOINT (.*)$", text, flags=re.MULTILINE).group(1))
    args = build_parser().parse_args([*entry[1:], "--topology", "abilene"])
    assert args.command == "controller" and args.rest_host == "0.0.0.0"

"""``import ryute`` (issue 17): one documented import name over the layered packages."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import ryute

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(set(ryute.__all__) - {"ENV_ID"}))
def test_every_name_is_the_object_of_its_home_module(name):
    home = importlib.import_module(ryute._HOME[name])
    assert getattr(ryute, name) is getattr(home, name)
    assert name in ryute.__doc__  # documented


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'policy'"):
        ryute.policy  # noqa: B018


def test_import_is_light_and_registers_the_environment(tmp_path):
    """No torch, os-ken or Mininet until a name that needs one is used; the env id works."""
    code = (
        "import sys, gymnasium, ryute\n"
        "heavy = {'torch', 'os_ken', 'mininet', 'stable_baselines3'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "env = gymnasium.make(ryute.ENV_ID, topology='ring:n=4', "
        "traffic='synthetic:steps=20,seed=1', history=2, episode_length=4)\n"
        "env.reset(seed=0)\n"
    )
    env = {"RYUTE_OPTIMA_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_documented_example_runs(tmp_path, monkeypatch):
    """The module docstring's example, on a small ring (the generalist decides there)."""
    monkeypatch.setenv("RYUTE_OPTIMA_CACHE", str(tmp_path))
    graph = ryute.load_topology("ring:n=5")
    series = ryute.synthetic_traffic(graph, steps=40, seed=1)
    paths = ryute.PathSet.from_graph(graph, k=4)
    policies = {"agent": ryute.load_agent("default", paths, "ring:n=5"),
                "invcap": ryute.make_policy("invcap", paths)}
    result = ryute.evaluate(graph, series, paths, policies, range(30, 40))
    assert isinstance(result, ryute.Evaluation)
    assert set(result.mlu) == {"agent", "invcap"}
    assert (result.mlu["invcap"] >= result.optimal - 1e-9).all()

"""ryute's public Python API: one import name for notebooks and other tools.

The code lives in the layered packages (``topologies``, ``sim``, ``agents``, ``controller``,
``lab``); this module re-exports what a user of the library needs under one name that does not
collide with other packages called ``sim`` or ``agents``. Each name is imported when first
used, so ``import ryute`` stays light (no torch, os-ken or Mininet until asked for); it does
register the fluid environment with gymnasium as ``ryute/TE-v0``.

    import gymnasium, ryute

    graph = ryute.load_topology("abilene")                      # or a file: docs/formats.md
    series = ryute.synthetic_traffic(graph, steps=288, seed=1)   # or ryute.load_traffic(FILE)
    paths = ryute.PathSet.from_graph(graph, k=4)
    policies = {"agent": ryute.load_agent("default", paths, "abilene"),
                "invcap": ryute.make_policy("invcap", paths)}
    result = ryute.evaluate(graph, series, paths, policies, range(200, 288))
    env = gymnasium.make("ryute/TE-v0", topology="abilene", traffic="synthetic")

The names, by area (each is documented where it is defined):

- topologies and traffic: ``load_topology``, ``TopologyError``, ``TrafficSeries``,
  ``TrafficError``, ``load_traffic``, ``save_traffic``, ``synthetic_traffic``,
  ``read_sndlib_archive``, ``import_flows``;
- the TE core: ``PathSet``, ``Decision``, ``NetworkState``, ``Policy``, ``link_loads``,
  ``mlu``, ``optimal_mlu``, ``optimal_series``;
- environments: ``ENV_ID``, ``TEEnv`` (fluid), ``MininetTEEnv`` (Mininet, root);
- policies: ``make_policy``, ``BASELINES``, ``fallback_policy``, ``ShortestPathPolicy``,
  ``LpForecastPolicy``, ``AgentPolicy``;
- evaluation: ``evaluate``, ``Evaluation``, ``select_intervals``;
- model files and training: ``load_agent``, ``save_model``, ``read_model``,
  ``resolve_model``, ``ModelFileError``, ``train``, ``TrainConfig``.
"""
from __future__ import annotations

import importlib
from typing import Any

from sim import ENV_ID  # registers ryute/TE-v0 with gymnasium

_HOMES = {
    "topologies.catalog": ("load_topology", "TopologyError"),
    "topologies.traffic": ("TrafficSeries", "TrafficError", "load_traffic", "save_traffic",
                           "synthetic_traffic", "read_sndlib_archive"),
    "topologies.flows": ("import_flows",),
    "sim.paths": ("PathSet",),
    "sim.decision": ("Decision",),
    "sim.state": ("NetworkState",),
    "sim.policy": ("Policy",),
    "sim.loads": ("link_loads", "mlu"),
    "sim.optimal": ("optimal_mlu", "optimal_series"),
    "sim.env": ("TEEnv",),
    "lab.mininet_env": ("MininetTEEnv",),
    "agents.baselines": ("make_policy", "BASELINES", "fallback_policy", "ShortestPathPolicy",
                         "LpForecastPolicy"),
    "agents.agent": ("AgentPolicy",),
    "agents.evaluate": ("evaluate", "Evaluation", "select_intervals"),
    "agents.model_file": ("load_agent", "save_model", "read_model", "resolve_model",
                          "ModelFileError"),
    "agents.train": ("train", "TrainConfig"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["ENV_ID", *_HOME]


def __getattr__(name: str) -> Any:
    """The re-exported ``name``, imported from its home module on first use."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'ryute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

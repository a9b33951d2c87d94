"""Fault injection into the agent, for testing the health checks against a running controller.

Enabled only when ``$RYUTE_FAULTS`` names a control file when the controller starts (it says so
loudly in its log). Before every decision the wrapper reads ``{"fault": NAME}`` from that file:

- ``raise``: the agent raises;  ``sleep``: it answers after ``seconds`` (default 1 s);
- ``nan``: it returns weights that are not numbers;
- ``down_link``: it puts the weight on paths over a link that is down;
- ``drift``: its training data claims a demand a million times larger than what the network
  carries, so the measured input is far outside what it was trained on;
- anything else, or no file: the agent behaves normally.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.decision import Decision
from sim.state import NetworkState

LOG = logging.getLogger("ryute.faults")
ENVIRONMENT_VARIABLE = "RYUTE_FAULTS"


@dataclass(frozen=True)
class _DriftedEncoding:
    scale_reference: float


class FaultInjector:
    """Wraps an agent; behaves like it unless the control file asks for a fault."""

    def __init__(self, agent: Any, control_file: str | Path) -> None:
        self.agent = agent
        self.control_file = Path(control_file)
        self.name = getattr(agent, "name", "agent")
        self.metadata = getattr(agent, "metadata", {})
        LOG.warning("FAULT INJECTION ENABLED: agent faults are read from %s", self.control_file)

    def _fault(self) -> dict[str, Any]:
        try:
            return json.loads(self.control_file.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def encoding(self) -> Any:
        encoding = getattr(self.agent, "encoding", None)
        if self._fault().get("fault") == "drift" and encoding is not None:
            return _DriftedEncoding(encoding.scale_reference * 1e6)
        return encoding

    def decide(self, state: NetworkState) -> Decision:
        fault = self._fault()
        kind = fault.get("fault")
        if kind == "raise":
            raise RuntimeError("injected fault")
        if kind == "sleep":
            time.sleep(float(fault.get("seconds", 1.0)))
        decision = self.agent.decide(state)
        if kind == "nan":
            return _unchecked(decision, np.full_like(decision.weights, np.nan))
        if kind == "down_link":
            dead = ~state.path_set.live_paths(state.down_links)
            if dead.any():  # the agent's weights, plus weight on every path over a dead link
                return _unchecked(decision, decision.weights + dead)
        return decision


def _unchecked(decision: Decision, weights: np.ndarray) -> Decision:
    """A Decision carrying weights its constructor would refuse: what a broken model returns."""
    broken = object.__new__(Decision)
    object.__setattr__(broken, "path_set", decision.path_set)
    object.__setattr__(broken, "weights", weights)
    return broken


def wrap_if_enabled(agent: Any) -> Any:
    control = os.environ.get(ENVIRONMENT_VARIABLE)
    return FaultInjector(agent, control) if control else agent

"""The Policy interface: what the RL agent, the fallback and every baseline implement."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from sim.decision import Decision
from sim.paths import PathSet
from sim.state import NetworkState


@runtime_checkable
class Policy(Protocol):
    """A routing method: turns the current network state into a decision over ``state.path_set``.

    ``decide`` may use only ``state``: the OD matrices of past intervals (``state.history``), the
    measured link loads and the links that are down. It must not put weight on a path through a
    down link, and should raise (the controller's health check catches it) rather than return
    something it cannot stand behind.
    """

    @property
    def name(self) -> str: ...  # read-only: frozen dataclasses and class attributes both fit

    def decide(self, state: NetworkState) -> Decision: ...


def check_path_set(expected: PathSet, state: NetworkState) -> None:
    """Raise ``ValueError`` when a policy built for one path set is asked about another."""
    if expected != state.path_set:
        raise ValueError(
            f"the policy was built for path set {expected.fingerprint()[:12]}, "
            f"the state has {state.path_set.fingerprint()[:12]}"
        )

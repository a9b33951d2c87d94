"""Training and validation samples from a traffic series, encoded exactly as the environment does.

A sample is one decision interval t: the observation built from the H usable matrices before t (what
the controller would have measured), the per-OD demand of matrix t (what the decision is scored on)
and the optimal MLU of matrix t (the denominator of the score). Missing (all-zero) matrices are never
observed nor scored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from sim.envs.encoding import Encoding
from sim.loads import od_demands
from sim.optimal import optimal_series
from topologies.traffic import TrafficSeries


@dataclass(frozen=True)
class Samples:
    """Decision intervals ``times`` [B] of a series with their ``observations`` [B, n_obs],
    ``demands`` [B, n_ods] (Mbit/s) and ``optima`` [B] (optimal MLU)."""

    times: np.ndarray
    observations: np.ndarray
    demands: np.ndarray
    optima: np.ndarray

    def __len__(self) -> int:
        return len(self.times)

    def subset(self, index: np.ndarray) -> Samples:
        return Samples(self.times[index], self.observations[index], self.demands[index],
                       self.optima[index])


def usable_times(path_set_encoding: Encoding, series: TrafficSeries) -> np.ndarray:
    """Indices of the matrices with demand between OD pairs."""
    od = od_demands(path_set_encoding.path_set, series.tm)
    return np.flatnonzero(od.sum(axis=1) > 0)


def decision_times(encoding: Encoding, series: TrafficSeries, start: int, stop: int) -> np.ndarray:
    """Usable intervals in ``[start, stop)`` that have H usable matrices before them."""
    usable = usable_times(encoding, series)[encoding.history:]
    return usable[(usable >= start) & (usable < stop)]


def build_samples(
    encoding: Encoding,
    graph: nx.DiGraph,
    series: TrafficSeries,
    times: np.ndarray,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Samples:
    """The samples of ``times`` (decision intervals of ``series``, aligned to ``graph``);
    ``progress(done, total)`` is called after each LP optimum solved (not after cached ones)."""
    ps = encoding.path_set
    od = od_demands(ps, series.tm)
    usable = np.flatnonzero(od.sum(axis=1) > 0)
    zeros, up = np.zeros(ps.n_links), np.ones(ps.n_links)
    observations = np.empty((len(times), encoding.n_observations), np.float32)
    for i, t in enumerate(times):
        j = int(np.searchsorted(usable, t))
        if j < encoding.history:
            raise ValueError(f"interval {t} has fewer than {encoding.history} usable matrices "
                             "before it")
        # Utilizations are left at zero: the network does not read them (see agents.agent).
        observations[i] = encoding.encode(od[usable[j - encoding.history:j]], zeros, up)
    optima = optimal_series(graph, series.tm[times], cache_dir=cache_dir, progress=progress)
    return Samples(np.asarray(times), observations, od[times].astype(np.float32),
                   optima.astype(np.float32))


def concat_samples(parts: list[Samples]) -> Samples:
    """The samples of several series (e.g. the real training range and synthetic series) as one
    set; ``times`` index their own series."""
    if len(parts) == 1:
        return parts[0]
    return Samples(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("times", "observations", "demands", "optima")))

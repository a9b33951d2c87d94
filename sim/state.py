"""NetworkState: everything a policy may look at when it decides.

Plain data, filled by the two shells: the controller from OpenFlow statistics and port-status
events, the gymnasium environment from a replayed traffic series. Use the methods to change link
state and loads so that the graph attributes and the vectors stay in step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from numpy.typing import ArrayLike

from sim.paths import Link, PathSet

DEFAULT_HISTORY = 12  # one hour of 5-minute matrices


@dataclass
class NetworkState:
    """The network as the TE core sees it.

    - ``graph``: directed graph; every edge has ``capacity_mbps``, ``load_mbps`` and ``up``
      (the last two are added with defaults 0.0 and True when missing).
    - ``path_set``: the candidate paths (its links must be exactly the graph's edges).
    - ``history``: recent OD matrices [N, N] in Mbit/s (``path_set.nodes`` order), newest last,
      at most ``history_len``; a policy deciding for interval t sees only matrices before t.
    - ``loads_mbps``: current load per link [L] (``path_set.edges`` order).
    - ``down_links``: directed links that are down.
    - ``updated_at``: time (seconds, the shell's clock) of the last statistics update, or None;
      ``previous_update_at`` the one before (the loads are the rates between the two).
    """

    graph: nx.DiGraph
    path_set: PathSet
    history_len: int = DEFAULT_HISTORY
    history: deque[np.ndarray] = field(default_factory=deque)
    # None: read from the graph's load_mbps attributes in __post_init__ (an array after it)
    loads_mbps: np.ndarray = None  # type: ignore[assignment]
    down_links: set[Link] = field(default_factory=set)
    updated_at: float | None = None
    previous_update_at: float | None = None

    def __post_init__(self) -> None:
        ps = self.path_set
        if set(self.graph.edges) != set(ps.edges):
            raise ValueError("the graph's edges differ from the path set's links")
        if self.history_len < 1:
            raise ValueError(f"history_len must be >= 1, got {self.history_len}")
        self.history = deque((self._matrix(m) for m in self.history), maxlen=self.history_len)
        if self.loads_mbps is None:
            self.loads_mbps = np.array(
                [self.graph.edges[e].get("load_mbps", 0.0) for e in ps.edges], dtype=np.float64
            )
        else:
            self.loads_mbps = self._loads(self.loads_mbps)
        self.down_links = set(self.down_links) | {
            e for e in ps.edges if not self.graph.edges[e].get("up", True)
        }
        ps.link_mask(self.down_links)  # unknown links raise here, not later
        for i, e in enumerate(ps.edges):
            attrs = self.graph.edges[e]
            attrs["load_mbps"] = float(self.loads_mbps[i])
            attrs["up"] = e not in self.down_links

    # ------------------------------------------------------------------ updates
    def push_matrix(self, tm: ArrayLike) -> None:
        """Append the newest OD matrix (the oldest one drops out beyond ``history_len``)."""
        self.history.append(self._matrix(tm))

    def set_loads(self, loads_mbps: ArrayLike, at: float | None = None) -> None:
        """Record measured link loads [L] (Mbit/s) taken at time ``at``."""
        self.loads_mbps = self._loads(loads_mbps)
        for e, x in zip(self.path_set.edges, self.loads_mbps):
            self.graph.edges[e]["load_mbps"] = float(x)
        if at is not None:
            self.previous_update_at, self.updated_at = self.updated_at, at

    def set_link_up(self, u: object, v: object, up: bool) -> None:
        """Mark directed link ``(u, v)`` up or down."""
        self.path_set.link_index(u, v)
        self.graph.edges[u, v]["up"] = bool(up)
        (self.down_links.discard if up else self.down_links.add)((u, v))

    # ------------------------------------------------------------------ views
    @property
    def capacities(self) -> np.ndarray:
        """Capacity per link [L] (Mbit/s)."""
        return self.path_set.capacities

    @property
    def utilization(self) -> np.ndarray:
        """Load / capacity per link [L]."""
        return self.loads_mbps / self.path_set.capacities

    @property
    def mlu(self) -> float:
        """Maximum measured link utilization."""
        return float(self.utilization.max()) if len(self.loads_mbps) else 0.0

    @property
    def last_matrix(self) -> np.ndarray | None:
        """The newest OD matrix, or None before the first one."""
        return self.history[-1] if self.history else None

    @property
    def live_paths(self) -> np.ndarray:
        """Bool [P]: paths that use no down link."""
        return self.path_set.live_paths(self.down_links)

    def live_graph(self) -> nx.DiGraph:
        """A view of the graph without its down links."""
        return nx.restricted_view(self.graph, [], list(self.down_links))

    # ------------------------------------------------------------------ internals
    def _matrix(self, tm: ArrayLike) -> np.ndarray:
        m = np.array(tm, dtype=np.float64)
        n = self.path_set.n_nodes
        if m.shape != (n, n):
            raise ValueError(f"OD matrix has shape {m.shape}, expected ({n}, {n})")
        m.setflags(write=False)
        return m

    def _loads(self, loads: Iterable[float] | ArrayLike) -> np.ndarray:
        x = np.array(loads, dtype=np.float64).reshape(-1)
        if x.shape != (self.path_set.n_links,):
            raise ValueError(f"loads have shape {x.shape}, expected ({self.path_set.n_links},)")
        return x

"""The RL agent at decision time: a small torch network that maps recent traffic to path weights.

The contract with the world is :class:`sim.envs.encoding.Encoding`, the very object the gymnasium
environment uses: the agent builds its observation with ``Encoding.observe_state`` and decodes its
action with ``Encoding.decision``, so a decision scored in simulation is the decision the controller
installs. Plain torch and numpy: no gymnasium or stable-baselines3 import at decision time.

The network (:class:`SplitNet`) reads the scale-free part of the observation (the last H matrices,
each divided by its own total), the log of their totals and the link-up mask, and emits one action in
``(-1, 1)`` per candidate path (``tanh``): the environment's action, whose ``logit_scale`` multiple
is a logit of a softmax per OD pair over the live candidates. The output is relative to a fixed
``prior`` (a buffer of pre-tanh offsets: zero, an equal split, unless trained with
``prior="invcap"``). It ignores the link utilizations on
purpose: they are a function of the agent's own previous routing of the newest matrix, which it
already sees, and leaving them out removes a feedback loop between training and serving.

:class:`PathNet` (``TrainConfig.network = "path"``) is the topology-aware alternative: one small
network shared by every candidate path, with unrolled congestion rounds; its weights do not
depend on the topology, so a model trained on one network decides on others
(:func:`agents.model_file.load_agent` with ``transfer=True``, ``ryute evaluate --transfer``).

:func:`decode_torch` and :class:`FluidLoss` are the differentiable twins of ``Encoding.weights`` and
``sim.loads.mlu`` (same incidence matrix, same softmax) used to train by direct gradient.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from sim.decision import Decision
from sim.envs.encoding import Encoding
from sim.paths import Link, PathSet
from sim.policy import check_path_set
from sim.state import NetworkState

log = logging.getLogger(__name__)

#: Observation parts the network reads (see ``Encoding.layout``).
FEATURES = ("shares", "log_scale", "link_up")


def feature_index(encoding: Encoding, parts: Sequence[str] = FEATURES) -> np.ndarray:
    """Positions, in the observation vector, of the entries the network reads."""
    layout = encoding.layout
    return np.concatenate([np.arange(layout[p].start, layout[p].stop) for p in parts])


class SplitNet(nn.Module):
    """MLP from observations [B, n_obs] to actions [B, C] in ``(-1, 1)``.

    The selected features are standardized with the training set's mean and std, kept as buffers
    so that they travel with the weights (``state_dict``).
    """

    # buffers (register_buffer), declared for the type checker: nn.Module.__getattr__ is untyped
    index: torch.Tensor
    prior: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, index: np.ndarray, n_actions: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))
        # Pre-tanh offset of every action: the prior the network's output is relative to (zero =
        # equal split; see ``set_prior``). A buffer: it travels with the weights.
        self.register_buffer("prior", torch.zeros(n_actions))
        n_in = len(index)
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, n_actions)
        # Start at an equal split (action 0); the head's bias is the learned prior over paths.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def set_normalization(self, observations: np.ndarray) -> None:
        """Standardize features with the statistics of ``observations`` [B, n_obs]."""
        x = torch.as_tensor(observations, dtype=torch.float32)[:, self.index]
        self.mean.copy_(x.mean(0))
        # Constant features (e.g. link_up without failures) keep unit scale.
        self.std.copy_(torch.where(x.std(0) > 1e-6, x.std(0), torch.ones_like(self.std)))

    def set_prior(self, action: np.ndarray) -> None:
        """Make the untrained network decide ``action`` [C] (in ``(-1, 1)``); the trained one then
        learns offsets from it."""
        a = torch.as_tensor(np.asarray(action), dtype=torch.float32).clamp(-0.999, 0.999)
        self.prior.copy_(torch.atanh(a))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs[..., self.index] - self.mean) / self.std

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.prior + self.head(self.body(self.features(obs))))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # Model files written before the prior existed decide as if it were zero.
        if "prior" not in state_dict and "head.bias" in state_dict:
            state_dict = {**state_dict, "prior": torch.zeros_like(state_dict["head.bias"],
                                                                  dtype=torch.float32)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class PathNet(nn.Module):
    """Topology-aware policy: one small network shared by every candidate path (as in TEAL), so
    its few thousand weights do not grow with the topology, and what it learns is about paths,
    links and congestion rather than about particular OD pairs.

    Every candidate path starts from its static features (hop count relative to the mean and to
    its OD pair's shortest candidate, log bottleneck capacity relative to the mean capacity) and
    its OD pair's scale-free demand over the history (newest, mean and peak share of the total
    times the number of OD pairs, and the variability). Then ``rounds`` congestion rounds, an
    unrolled learned optimizer: with the current split (softmax of the logits per OD pair over the
    live paths), route the mean and the peak demand, take every link's load relative to the
    busiest link, and update each path's logit from its busiest and average link, its weight and
    its features. Reads the ``shares`` and ``link_up`` parts of the observation.

    Paths are runs of link indices in one flat list (CSR), so the cost is linear in the total
    length of the candidate paths: routing and per-path sums are sparse products, per-path maxima
    segment reductions, and the update network runs in blocks of :data:`BLOCK` paths (its
    activations stay in cache: on Cogentco's 154,026 paths, moving them through memory had cost
    more than the arithmetic). The tensors derived from the path set are rebuilt from the
    encoding, not stored; ``index``, ``mean`` and ``std`` (the shares' training statistics, for
    the adapter's drift detection, as :class:`SplitNet` keeps them) are stored with the weights.
    """

    N_STATIC, N_DEMAND, N_CONGESTION = 3, 4, 5
    BLOCK = 4096
    # buffers (register_buffer), declared for the type checker: nn.Module.__getattr__ is untyped
    path_ptr: torch.Tensor
    path_members: torch.Tensor
    link_ptr: torch.Tensor
    link_members: torch.Tensor
    incidence_ones: torch.Tensor
    path_lengths: torch.Tensor
    hops: torch.Tensor
    capacity: torch.Tensor
    od: torch.Tensor
    link_up_index: torch.Tensor
    static: torch.Tensor
    index: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, encoding: Encoding, hidden: int = 64, rounds: int = 4,
                 trend: bool = False):
        super().__init__()
        # trend: also read and route each OD pair's linear-trend forecast of the next share
        # (what lp_pred forecasts); off in model files written before it existed.
        self.trend = bool(trend)
        ps, layout = encoding.path_set, encoding.layout
        self.n_ods, self.n_links = ps.n_ods, ps.n_links
        self.history, self.logit_scale = encoding.history, float(encoding.logit_scale)
        self.rounds = int(rounds)
        by_path = ps.incidence[encoding.candidate_ids].tocsr()  # [C, L]
        by_link = by_path.T.tocsr()  # [L, C]
        for name, matrix in (("path", by_path), ("link", by_link)):
            # CSR parts as plain buffers (a sparse tensor cannot be deep-copied)
            self.register_buffer(f"{name}_ptr", torch.as_tensor(matrix.indptr, dtype=torch.long),
                                 persistent=False)
            self.register_buffer(f"{name}_members",
                                 torch.as_tensor(matrix.indices, dtype=torch.long),
                                 persistent=False)
        # the incidence's nonzeros, shared by both layouts (not rebuilt at every decision)
        self.register_buffer("incidence_ones", torch.ones(by_path.nnz), persistent=False)
        lengths = torch.diff(self.path_ptr)
        self.register_buffer("path_lengths", lengths, persistent=False)
        self.register_buffer("hops", lengths.float(), persistent=False)
        capacity = torch.tensor(ps.capacities, dtype=torch.float32)
        self.register_buffer("capacity", capacity / capacity.mean(), persistent=False)
        self.register_buffer("od", torch.tensor(encoding.candidate_od), persistent=False)
        self.register_buffer("link_up_index", torch.arange(layout["link_up"].start,
                                                           layout["link_up"].stop),
                             persistent=False)
        self.register_buffer("static", self._static_features(), persistent=False)
        shares = layout["shares"]
        self.register_buffer("index", torch.arange(shares.start, shares.stop))
        self.register_buffer("mean", torch.zeros(shares.stop - shares.start))
        self.register_buffer("std", torch.ones(shares.stop - shares.start))
        n_path = self.N_STATIC + self.N_DEMAND + self.trend
        n_congestion = self.N_CONGESTION + 2 * self.trend
        self.start = nn.Sequential(nn.Linear(n_path, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        first, middle, last = (nn.Linear(n_path + n_congestion, hidden),
                               nn.Linear(hidden, hidden), nn.Linear(hidden, 1))
        self.update = nn.Sequential(first, nn.ReLU(), middle, nn.ReLU(), last)
        nn.init.zeros_(last.weight)  # rounds start as no-ops
        nn.init.zeros_(last.bias)

    @property
    def hidden(self) -> int:
        first = self.start[0]
        assert isinstance(first, nn.Linear)
        return first.out_features

    def _over_paths(self, per_link: torch.Tensor, reduce: str) -> torch.Tensor:
        """[B, L] -> [B, C]: ``reduce`` ("max", "min") of each candidate path's links."""
        lengths = self.path_lengths.expand(per_link.shape[0], -1)
        links = per_link.index_select(1, self.path_members)  # faster than [:, members] here
        return torch.segment_reduce(links, reduce, lengths=lengths, axis=1)

    def _sparse(self, name: str, shape: tuple[int, int]) -> torch.Tensor:
        members = getattr(self, f"{name}_members")
        with warnings.catch_warnings():  # "sparse CSR support is in beta": what we use is not
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(getattr(self, f"{name}_ptr"), members,
                                           self.incidence_ones, shape,
                                           check_invariants=False)

    def _static_features(self) -> torch.Tensor:
        bottleneck = self._over_paths(self.capacity[None], "min")[0]
        shortest = torch.full((self.n_ods,), torch.inf).scatter_reduce(
            0, self.od, self.hops, reduce="amin")
        return torch.stack([self.hops / self.hops.mean(), self.hops - shortest[self.od],
                            torch.log(bottleneck)], 1)

    def set_normalization(self, observations: np.ndarray) -> None:
        """Keep the shares' statistics of the training set (drift detection, see SplitNet)."""
        x = torch.as_tensor(observations, dtype=torch.float32)[:, self.index]
        self.mean.copy_(x.mean(0))
        self.std.copy_(torch.where(x.std(0) > 1e-6, x.std(0), torch.ones_like(self.std)))

    def _congestion(self, flows: torch.Tensor, by_link: torch.Tensor,
                    by_path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Path flows [B, C] -> each path's busiest and average link, [B, C] each, with link
        loads relative to the busiest link."""
        load = (by_link @ flows.T).T / self.capacity  # [B, L]
        relative = load / load.amax(1, keepdim=True).clamp(min=1e-9)
        return self._over_paths(relative, "max"), (by_path @ relative.T).T / self.hops

    def _update(self, paths: torch.Tensor, congestion: torch.Tensor) -> torch.Tensor:
        """The update network on path features [N, ...] and congestion [N, N_CONGESTION],
        block by block -> [N]."""
        return torch.cat([self.update(torch.cat([paths[i: i + self.BLOCK],
                                                 congestion[i: i + self.BLOCK]], -1))
                          for i in range(0, len(paths), self.BLOCK)]).squeeze(-1)

    def _forecast(self, shares: torch.Tensor) -> torch.Tensor:
        """[B, H, n_ods] -> [B, n_ods]: the least-squares line through each OD pair's history,
        one interval ahead, clipped at zero (``agents.baselines.linear_trend`` on shares)."""
        t = torch.arange(self.history, dtype=shares.dtype)
        t = t - t.mean()
        if self.history < 3:
            return shares[:, -1]
        slope = (t[None, :, None] * (shares - shares.mean(1, keepdim=True))).sum(1) / (t * t).sum()
        return (shares.mean(1) + slope * (self.history - (self.history - 1) / 2)).clamp(min=0.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        batch = obs.shape[0]
        shares = obs[:, self.index].reshape(batch, self.history, self.n_ods) * self.n_ods
        mean, peak = shares.mean(1), shares.amax(1)
        features = [torch.log1p(shares[:, -1]), torch.log1p(mean), torch.log1p(peak),
                    (shares.std(1) / (mean + 1e-6)).clamp(max=5.0)]
        demands = [mean, peak]  # routed in every round, in one batch
        if self.trend:
            forecast = self._forecast(shares)
            features.append(torch.log1p(forecast))
            demands.append(forecast)
        demand = torch.stack(features, -1)
        paths = torch.cat([self.static.expand(batch, -1, -1), demand[:, self.od]], -1)
        live = self._over_paths(obs[:, self.link_up_index], "min") > 0.5  # no down link
        logits = self.start(paths).squeeze(-1)
        flat_paths = paths.flatten(0, 1)
        by_link = self._sparse("link", (self.n_links, len(self.od)))
        by_path = self._sparse("path", (len(self.od), self.n_links))
        routed = torch.cat(demands)[:, self.od]  # [len(demands) * B, C]
        for _ in range(self.rounds):
            # the split the decoder would make of these logits (Encoding.weights: bounded)
            weights = segment_softmax(self.logit_scale * torch.tanh(logits / self.logit_scale),
                                      self.od, self.n_ods, live)
            busiest, average = self._congestion(weights.repeat(len(demands), 1) * routed, by_link,
                                                by_path)
            congestion = [weights]
            for k in range(len(demands)):
                congestion += [busiest[k * batch:(k + 1) * batch],
                               average[k * batch:(k + 1) * batch]]
            update = self._update(flat_paths, torch.stack(congestion, -1).flatten(0, 1))
            logits = logits + update.view(batch, -1)
        return torch.tanh(logits / self.logit_scale)


def share_shift(net: SplitNet | PathNet, encoding: Encoding, od_demand: np.ndarray) -> np.ndarray | None:
    """How far the traffic mix of matrices [B, n_ods] (per-OD demand) lies from the training
    data, [B]: the mean over OD pairs of ``|z|`` (capped at 10) of each pair's share of the total,
    standardized with the network's training statistics of the newest matrix's shares. None when
    the network does not read shares. Scale-free, like the network's input."""
    shares = encoding.layout["shares"]
    newest = np.arange(shares.stop - encoding.path_set.n_ods, shares.stop)
    where = {int(p): i for i, p in enumerate(net.index.tolist())}
    if not all(int(p) in where for p in newest):
        return None
    cols = np.array([where[int(p)] for p in newest])
    od = np.atleast_2d(np.asarray(od_demand, np.float64))
    x = od / od.sum(axis=1, keepdims=True)
    z = (x - net.mean.numpy()[cols]) / net.std.numpy()[cols]
    return np.minimum(np.abs(z), 10.0).mean(axis=1)


# ---------------------------------------------------------------------- differentiable fluid model
def segment_softmax(logits: torch.Tensor, segment: torch.Tensor, n_segments: int,
                    live: torch.Tensor) -> torch.Tensor:
    """Softmax of ``logits`` [..., C] within each segment over its ``live`` entries ([C] or
    [..., C] bool); ``segment`` [C] is each entry's segment (OD pair) in ``[0, n_segments)``.

    The softmax of ``Encoding.weights`` in torch (the decoder and :class:`PathNet`'s rounds both
    use this one). Dead entries are masked with ``-inf``, so they get exactly 0 as in the numpy
    decoder (a finite mask is exact only while the live logits stay far above it). A segment with
    no live entry gets all zeros, where a plain ``-inf`` softmax would give 0/0: its maximum is
    taken as 0 and its total as 1, so neither the weights nor their gradients are ever NaN.
    """
    z = logits.masked_fill(~live, -torch.inf)
    index = segment.expand_as(z)
    shape = (*z.shape[:-1], n_segments)
    top = z.new_full(shape, -torch.inf).scatter_reduce(-1, index, z, reduce="amax")
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).detach()
    e = torch.exp(z - top.gather(-1, index))
    total = z.new_zeros(shape).scatter_add(-1, index, e)
    total = torch.where(total > 0, total, torch.ones_like(total))
    return e / total.gather(-1, index)


def decode_torch(encoding: Encoding, action: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Candidate weights [B, C] of actions [B, C]: ``Encoding.weights`` restricted to candidates.

    ``live`` [C] or [B, C] bool marks candidates that use no down link.
    """
    od = torch.as_tensor(encoding.candidate_od)
    return segment_softmax(encoding.logit_scale * action.clamp(-1, 1), od,
                           encoding.path_set.n_ods, live)


@dataclass(eq=False)
class FluidLoss:
    """MLU of candidate weights on per-OD demands, as ``sim.loads.mlu`` computes it, in torch.

    Uses the path set's own incidence matrix (candidate rows), so the loss cannot disagree with the
    core about which link a path crosses.
    """

    encoding: Encoding
    incidence: torch.Tensor = field(init=False)
    capacities: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        ps = self.encoding.path_set
        inc = ps.incidence[self.encoding.candidate_ids].toarray()
        self.incidence = torch.tensor(inc, dtype=torch.float32)
        self.capacities = torch.tensor(ps.capacities, dtype=torch.float32)
        self.candidate_od = torch.tensor(self.encoding.candidate_od)

    def mlu(self, weights: torch.Tensor, od_demand: torch.Tensor) -> torch.Tensor:
        """[B] MLU of candidate weights [B, C] on demands [B, n_ods] (Mbit/s)."""
        flows = weights * od_demand[..., self.candidate_od]
        return ((flows @ self.incidence) / self.capacities).amax(-1)


# ---------------------------------------------------------------------- the Policy
class AgentPolicy:
    """The trained agent as a TE-core :class:`~sim.policy.Policy` (``name = "agent"``).

    Build it with :func:`agents.model_file.load_agent` (from a model file) or directly from a
    network and its encoding. Deterministic: the mean action, no sampling.
    """

    name = "agent"

    def __init__(self, net: SplitNet | PathNet, encoding: Encoding,
                 metadata: dict[str, Any] | None = None):
        self.net = net.eval()
        self.encoding = encoding
        self.metadata = metadata or {}

    @property
    def path_set(self) -> PathSet:
        return self.encoding.path_set

    def action(self, observation: np.ndarray) -> np.ndarray:
        """The network's action [C] (float64) for one observation [n_obs]."""
        with torch.inference_mode():
            out = self.net(torch.as_tensor(observation, dtype=torch.float32)[None])
        return out[0].numpy().astype(np.float64)

    def decide(self, state: NetworkState) -> Decision:
        """Weights for every path of ``state.path_set``; zero on paths through down links.

        Raises ``ValueError`` when there is no usable matrix in the history yet or when some OD
        pair has no live candidate path (the controller's fallback then decides).
        """
        check_path_set(self.path_set, state)
        observation = self.encoding.observe_state(state)
        return self.encoding.decision(self.action(observation), state.down_links)

    def weights(self, observations: np.ndarray, down_links: Sequence[Link] = ()) -> np.ndarray:
        """Path weights [B, P] for a batch of observations [B, n_obs] (simulation, benchmarks)."""
        with torch.inference_mode():
            actions = self.net(torch.as_tensor(observations, dtype=torch.float32)).numpy()
        return self.encoding.weights(actions.astype(np.float64), down_links)

    def __repr__(self) -> str:
        return f"AgentPolicy({self.path_set!r}, model={self.metadata.get('id', '?')})"


def set_torch_threads() -> None:
    """One intra-op thread unless ``RYUTE_TORCH_THREADS`` says otherwise: a decision is a few
    small matrix products, and the controller shares its core with everything else."""
    torch.set_num_threads(int(os.environ.get("RYUTE_TORCH_THREADS", "1")))

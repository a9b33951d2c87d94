"""The generalist: one :class:`~agents.agent.PathNet` trained on many topologies, the embedded
default (``--model default``) for every network that has no shipped model of its own.

PathNet's weights do not depend on the topology (one small network shared by every candidate
path), so one set of weights can be trained on many networks at once: every training topology
gets its own PathNet *shell* (path-set buffers) around the same ``start`` and ``update``
modules, and every minibatch comes from one topology. The loss is the direct-gradient loss of
:mod:`agents.train` (MLU / optimal MLU of the next matrix, with the same augmentation).

Topologies come from the Internet Topology Zoo set of the shared data (Repetita capacities).
They are split by *family* (``Garr199901`` and ``Garr201201`` are one network at two dates):

- :data:`HELD_OUT`: never trained on, never chosen on; only :mod:`benchmarks.generalize` reads
  them, to report how the shipped model does on networks it never saw.
- :data:`VALIDATION`: chooses the epoch (checkpoint selection), never trained on.
- the rest (up to :attr:`GeneralistConfig.max_nodes` nodes) trains.

The split rule (families sorted by their largest member's size, then name; every 4th family from
the third held out, every 10th from the eighth for validation) is written out below so that
it cannot move when the data folder changes.

Traffic per training topology (all from the project's generator or the topology's own facts,
never an evaluation series): gravity series with a diurnal cycle and bursts
(:func:`topologies.traffic.synthetic_traffic`), *drifting* series whose traffic mix moves from
one gravity model to another over the series (:func:`drifting_traffic`), and capacity variants
(uniform capacities, as many published topologies have; capacities perturbed per link), some
with one link down (both directions).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch

from agents.agent import AgentPolicy, FluidLoss, PathNet, decode_torch
from agents.data import Samples, build_samples, decision_times
from agents.model_file import save_model
from agents.train import augment_batch, scale_reference
from sim.envs.encoding import DEFAULT_LOGIT_SCALE, Encoding
from sim.paths import Link, PathSet
from topologies.traffic import TrafficSeries, shared_data_dir, synthetic_traffic

log = logging.getLogger(__name__)

#: Zoo topologies no training run reads, nor chooses on (66, of 6 to 153 nodes).
HELD_OUT = (
    'Epoch', 'Telecomserbia', 'Netrail', 'HiberniaIreland', 'Ai3', 'Singaren', 'HiberniaCanada',
    'Uninet', 'Claranet', 'Airtel', 'Peer1', 'Nextgen', 'Highwinds', 'Sago', 'Noel', 'BtAsiaPac',
    'Oxford', 'Bandcon', 'Azrena', 'Belnet2007', 'Belnet2008', 'Belnet2009', 'Belnet2010',
    'Belnet2003', 'Belnet2004', 'Belnet2005', 'Belnet2006', 'BtEurope', 'VisionNet', 'AttMpls',
    'Funet', 'Darkstrand', 'Biznet', 'DeutscheTelekom', 'Digex', 'GtsCzechRepublic', 'GtsPoland',
    'GtsSlovakia', 'Cwix', 'Evolink', 'Reuna', 'Geant2001', 'Geant2009', 'Geant2010', 'Geant2012',
    'Roedunet', 'Sanet', 'Ntelos', 'Surfnet', 'Cesnet1993', 'Cesnet1997', 'Cesnet1999',
    'Cesnet2001', 'Cesnet200304', 'Cesnet200511', 'Cesnet200603', 'Cesnet200706', 'Cesnet201006',
    'Dfn', 'AsnetAm', 'Esnet', 'Tw', 'Syringa', 'RedBestel', 'Pern', 'Colt',
)
#: Zoo topologies that choose the checkpoint (19, of 7 to 138 nodes); never trained on.
VALIDATION = (
    'Basnet', 'Nsfcnet', 'Kreonet', 'Spiralight', 'Ans', 'Internetmci', 'Quest', 'Aconet', 'Xeex',
    'Integra', 'Ernet', 'CrlNetworkServices', 'Niif', 'Intranetwork', 'Carnet', 'Iris',
    'Internode', 'Switch', 'DialtelecomCz',
)


def zoo_dir() -> Path:
    return shared_data_dir() / "topologies" / "zoo"


def zoo_topology(name: str) -> nx.DiGraph:
    """The zoo topology ``name`` of the shared data, else the catalog's ``name`` (e.g.
    ``ring:n=5``, for tests without the shared data)."""
    from topologies.catalog import load_topology

    path = zoo_dir() / f"{name}.json"
    return load_topology(path if path.is_file() else name)


def training_topologies(max_nodes: int) -> list[str]:
    """Zoo topologies outside :data:`HELD_OUT` and :data:`VALIDATION` with at most ``max_nodes``
    nodes that load and are strongly connected, smallest first (name order among equals)."""
    from topologies.loaders import TopologyError

    excluded = set(HELD_OUT) | set(VALIDATION)
    found = []
    for path in sorted(zoo_dir().glob("*.json")):
        if path.stem in excluded:
            continue
        try:
            graph = zoo_topology(path.stem)
        except TopologyError as error:
            log.info("skipping %s: %s", path.stem, error)
            continue
        if graph.number_of_nodes() <= max_nodes and nx.is_strongly_connected(graph):
            found.append((graph.number_of_nodes(), path.stem))
    return [name for _, name in sorted(found)]


# ---------------------------------------------------------------------- traffic and variants
def drifting_traffic(graph: nx.DiGraph, steps: int, seed: int) -> TrafficSeries:
    """A series whose traffic mix drifts: the gravity series of seed ``seed`` blends, over the
    series, into the one of seed ``seed + 1`` (same diurnal cycle, different node weights)."""
    a = synthetic_traffic(graph, steps=steps, seed=seed)
    b = synthetic_traffic(graph, steps=steps, seed=seed + 1)
    ramp = np.linspace(0.0, 1.0, steps)[:, None, None]
    return TrafficSeries((1 - ramp) * a.tm + ramp * b.tm * a.tm.sum() / b.tm.sum(), a.nodes,
                         a.times, a.interval_s, f"drifting(seed={seed})")


def capacity_variant(graph: nx.DiGraph, kind: str, rng: np.random.Generator) -> nx.DiGraph:
    """``graph`` as it is (``"as-is"``), with every link at the median capacity (``"uniform"``),
    or with each physical link's capacity times a log-uniform factor in [1/4, 4] (``"perturbed"``).
    Both directions of a link keep one capacity."""
    if kind == "as-is":
        return graph
    out = graph.copy()
    median = float(np.median([c for _, _, c in graph.edges(data="capacity_mbps")]))
    for u, v in sorted(graph.edges, key=str):
        if kind == "uniform":
            out.edges[u, v]["capacity_mbps"] = median
        elif kind == "perturbed" and str(u) < str(v):
            factor = float(np.exp(rng.uniform(np.log(0.25), np.log(4.0))))
            for a, b in ((u, v), (v, u)):
                if out.has_edge(a, b):
                    out.edges[a, b]["capacity_mbps"] = graph.edges[a, b]["capacity_mbps"] * factor
        elif kind not in ("uniform", "perturbed"):
            raise ValueError(f"unknown capacity variant {kind!r}")
    return out


def failure_link(path_set: PathSet, rng: np.random.Generator) -> tuple[Link, ...]:
    """One physical link (both directions) whose loss leaves every OD pair a live candidate, or
    ``()`` when there is none."""
    from agents.evaluate import both_ways, stranded_ods

    links = [e for e in path_set.edges if str(e[0]) < str(e[1])]
    for i in rng.permutation(len(links)):
        down = both_ways(path_set, links[int(i)])
        if not len(stranded_ods(path_set, down)):
            return down
    return ()


# ---------------------------------------------------------------------- training tasks
@dataclass
class GeneralistConfig:
    """Everything that defines a generalist training run (stored in the model file)."""

    max_nodes: int = 40  # largest training topology (decision and LP cost grow with it)
    max_topologies: int = 0  # 0: every training topology; else the first N (smallest)
    validation_max_nodes: int = 75
    steps: int = 36  # intervals per series (the first ``history`` only feed observations)
    variants: tuple[str, ...] = ("as-is", "uniform", "perturbed")  # one series each, see above
    drifting: bool = True  # the "perturbed" variant's series drifts (else gravity for all)
    failures: float = 0.34  # share of topologies whose "as-is" series has one link down
    history: int = 12
    paths_k: int = 4
    path_method: str = "hops"
    deploy_paths_k: int = 8  # the candidate paths it runs on once trained: chosen on the
    deploy_path_method: str = "te"  # validation list (BENCHMARKS.md), model_file.paths_of
    logit_scale: float = DEFAULT_LOGIT_SCALE
    hidden: int = 64
    rounds: int = 4
    trend: bool = True  # PathNet also reads and routes each OD pair's trend forecast
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    augment: float = 0.6
    bursts: float = 0.3
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GeneralistConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown generalist option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
        if "variants" in values:
            values = {**values, "variants": tuple(str(v) for v in values["variants"])}
        return cls(**values)


@dataclass(eq=False)
class Task:
    """One topology variant's samples, encoding and PathNet shell (weights shared)."""

    name: str
    encoding: Encoding
    net: PathNet
    samples: Samples
    down: tuple[Link, ...] = ()
    loss: FluidLoss = field(init=False)
    live: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.loss = FluidLoss(self.encoding)
        self.live = torch.as_tensor(self.encoding.live_candidates(self.down))

    def ratios(self, observations: torch.Tensor, demands: torch.Tensor,
               optima: torch.Tensor) -> torch.Tensor:
        weights = decode_torch(self.encoding, self.net(observations), self.live)
        return self.loss.mlu(weights, demands) / optima


@dataclass(frozen=True, eq=False)
class Prepared:
    """What a task needs that is costly to compute (path set, optima): plain data, so that it
    can be computed in another process (a Ray task) and sent back."""

    name: str
    path_set: PathSet
    scale: float
    samples: Samples
    down: tuple[Link, ...]


def prepare(name: str, index: int, variant: int, config: GeneralistConfig, seed: int,
            failures: bool, cache_dir: Path | None) -> Prepared:
    """Task ``variant`` of topology ``name`` (``index`` in its list): a pure function of its
    arguments (its own random stream), so that it gives the same result in any process."""
    from sim.optimal import optimal_series

    rng = np.random.default_rng([seed, index, variant])
    kind = config.variants[variant]
    graph = capacity_variant(zoo_topology(name), kind, rng)
    series_seed = 10_000 * (seed + 1) + 10 * index + variant
    series = (drifting_traffic(graph, config.steps, series_seed)
              if kind == "perturbed" and config.drifting
              else synthetic_traffic(graph, steps=config.steps, seed=series_seed))
    path_set = PathSet.from_graph(graph, k=config.paths_k, method=config.path_method)
    totals = series.tm.reshape(len(series), -1).sum(axis=1)
    encoding = Encoding(path_set, scale_reference(totals[totals > 0]), config.history,
                        config.logit_scale)
    fail = failures and kind == "as-is" and rng.random() < config.failures
    down = failure_link(path_set, rng) if fail else ()
    times = decision_times(encoding, series, 0, len(series))
    samples = build_samples(encoding, graph, series, times, cache_dir)
    if down:
        obs = samples.observations.copy()
        obs[:, encoding.layout["link_up"]] = (~path_set.link_mask(down)).astype(np.float32)
        optima = optimal_series(graph, series.tm[times], down_links=down, cache_dir=cache_dir)
        samples = Samples(samples.times, obs, samples.demands, optima.astype(np.float32))
    label = f"{name}/{kind}" + ("/link-down" if down else "")
    return Prepared(label, path_set, encoding.scale_reference, samples, down)


def build_tasks(names: list[str], config: GeneralistConfig, seed: int,
                cache_dir: Path | None = None, shared: PathNet | None = None,
                failures: bool = True, ray_address: str | None = None) -> list[Task]:
    """Every (topology, variant) task of ``names``, prepared locally or, with ``ray_address``
    (``"local"`` for a local Ray, else a cluster address), as Ray tasks; the PathNet shells are
    then built here in order, so the result does not depend on where the work ran. The first
    task's net is the shared one when ``shared`` is None."""
    jobs = [(name, i, j, config, seed, failures, cache_dir)
            for i, name in enumerate(names) for j in range(len(config.variants))]
    if ray_address:
        from agents.cluster import ray_map

        prepared = ray_map(prepare, jobs, ray_address)
    else:
        prepared = [prepare(*job) for job in jobs]
    tasks: list[Task] = []
    for p in prepared:
        encoding = Encoding(p.path_set, p.scale, config.history, config.logit_scale)
        net = PathNet(encoding, config.hidden, config.rounds, config.trend)
        if shared is not None:  # one set of weights for every topology
            net.start, net.update = shared.start, shared.update
        shared = shared or net
        tasks.append(Task(p.name, encoding, net, p.samples, p.down))
    return tasks


# ---------------------------------------------------------------------- the trainer
class GeneralistTrainer:
    """Direct-gradient training of one PathNet over many topologies (see the module docstring)."""

    def __init__(self, config: GeneralistConfig | None = None, cache_dir: Path | None = None,
                 train_names: list[str] | None = None,
                 validation_names: list[str] | None = None,
                 ray_address: str | None = None) -> None:
        self.config = c = config or GeneralistConfig()
        torch.manual_seed(c.seed)
        names = train_names if train_names is not None else training_topologies(c.max_nodes)
        self.train_names = names[: c.max_topologies] if c.max_topologies else names
        if validation_names is None:
            validation_names = [n for n in VALIDATION
                                if zoo_topology(n).number_of_nodes() <= c.validation_max_nodes]
        self.validation_names = validation_names
        started = time.perf_counter()
        self.tasks = build_tasks(self.train_names, c, c.seed, cache_dir,
                                 ray_address=ray_address)
        self.shared = self.tasks[0].net
        validation_config = GeneralistConfig(**{**asdict(c), "variants": ("as-is", "perturbed")})
        self.validation = build_tasks(self.validation_names, validation_config, c.seed + 1,
                                      cache_dir, self.shared, failures=False,
                                      ray_address=ray_address)
        log.info("generalist: %d training tasks (%d topologies), %d validation tasks, %d "
                 "samples, built in %.0f s", len(self.tasks), len(self.train_names),
                 len(self.validation), sum(len(t.samples) for t in self.tasks),
                 time.perf_counter() - started)
        self.parameters = list(self.shared.parameters())
        self.optimizer = torch.optim.AdamW(self.parameters, lr=c.lr)
        # cosine decay over the run: large steps while far off, small ones to settle
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(1, c.epochs), eta_min=c.lr * 0.05)
        self.rng = np.random.default_rng(c.seed)
        self.history: list[dict[str, Any]] = []
        self.best: tuple[float, dict[str, torch.Tensor]] | None = None
        self.epoch = 0

    def train_epoch(self) -> float:
        """Every training sample once, in minibatches of one task each, in random order."""
        c = self.config
        batches = [(t, order[i:i + c.batch_size]) for t, task in enumerate(self.tasks)
                   for order in [self.rng.permutation(len(task.samples))]
                   for i in range(0, len(order), c.batch_size)]
        gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        losses = []
        for b in self.rng.permutation(len(batches)):
            t, index = batches[int(b)]
            task = self.tasks[t]
            obs, demand, optimum = augment_batch(task.encoding, task.samples.subset(index),
                                                 c.augment, c.bursts, gen)
            loss = task.ratios(obs, demand, optimum).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(loss.item())
        self.epoch += 1
        self.schedule.step()
        return float(np.mean(losses))

    def validate(self) -> dict[str, Any]:
        """Per validation task, mean / p90 / p99 of the ratio; ``objective`` averages
        (mean + p90 + p99) / 3 over the tasks."""
        per_task = {}
        with torch.no_grad():
            for task in self.validation:
                s = task.samples
                # copies: samples prepared by Ray arrive read-only
                r = task.ratios(torch.tensor(s.observations), torch.tensor(s.demands),
                                torch.tensor(s.optima)).numpy()
                per_task[task.name] = {"mean": float(r.mean()),
                                       "p90": float(np.percentile(r, 90)),
                                       "p99": float(np.percentile(r, 99))}
        objective = float(np.mean([(v["mean"] + v["p90"] + v["p99"]) / 3
                                   for v in per_task.values()]))
        return {"objective": objective, "tasks": per_task}

    def fit(self, progress: bool = False) -> AgentPolicy:
        started = time.perf_counter()
        while self.epoch < self.config.epochs:
            loss = self.train_epoch()
            scores = self.validate()
            if self.best is None or scores["objective"] < self.best[0]:
                self.best = (scores["objective"],
                             {k: v.clone() for k, v in self.shared.state_dict().items()})
            self.history.append({"epoch": self.epoch, "loss": loss,
                                 "validation": scores["objective"]})
            log.info("generalist epoch %d: loss %.4f, validation %.4f (%.0f s)", self.epoch,
                     loss, scores["objective"], time.perf_counter() - started)
        assert self.best is not None
        self.shared.load_state_dict(self.best[1])
        self.scores = self.validate()
        self.seconds = time.perf_counter() - started
        return AgentPolicy(self.shared, self.tasks[0].encoding)

    def metadata(self) -> dict[str, Any]:
        return {
            "topology": {"name": "generalist"},
            "generalist": {"train": self.train_names, "validation": self.validation_names,
                           "held_out": list(HELD_OUT),
                           "tasks": [t.name for t in self.tasks]},
            "training": {"traffic": "synthetic gravity and drifting series (project generator)",
                         "samples": sum(len(t.samples) for t in self.tasks),
                         "epochs": self.epoch, "seconds": round(getattr(self, "seconds", 0.0))},
            "config": asdict(self.config),
            "deploy_paths": {"k": self.config.deploy_paths_k,
                             "method": self.config.deploy_path_method},
            "validation": {"objective": self.scores["objective"]},
            "validation_tasks": self.scores["tasks"],
            "history": self.history,
            # scale-free: the network reads traffic shares only, never the total demand
            "observation": {},
        }

    def save(self, path: str | Path) -> Path:
        agent = AgentPolicy(self.shared, self.tasks[0].encoding)
        return save_model(path, agent, self.metadata(), weights_dtype="float32")

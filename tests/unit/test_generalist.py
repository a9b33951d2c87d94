"""The generalist: one PathNet over many topologies, and ``--model default`` resolving to it."""
from __future__ import annotations

import re
import shutil
import zipfile

import networkx as nx
import numpy as np
import pytest
import torch

from agents import model_file
from agents.generalist import (
    HELD_OUT,
    VALIDATION,
    GeneralistConfig,
    GeneralistTrainer,
    capacity_variant,
    drifting_traffic,
    training_topologies,
    zoo_dir,
)
from agents.model_file import ModelFileError, load_agent, resolve_default
from controller.decisions import training_demand
from sim.paths import PathSet
from sim.state import NetworkState
from topologies.catalog import load_topology
from topologies.traffic import synthetic_traffic

TINY = GeneralistConfig(steps=14, history=3, epochs=2, hidden=8, rounds=2, batch_size=4, trend=True,
                        variants=("as-is", "perturbed"), failures=0.5)


def tiny_trainer(seed: int = 0) -> GeneralistTrainer:
    config = GeneralistConfig(**{**TINY.__dict__, "seed": seed})
    return GeneralistTrainer(config, train_names=["ring:n=5", "fat-tree:k=4"],
                             validation_names=["ring:n=6"])


@pytest.fixture(scope="module")
def generalist(tmp_path_factory):
    trainer = tiny_trainer()
    trainer.fit()
    return trainer, trainer.save(tmp_path_factory.mktemp("models") / "generalist.zip")


def state_with_traffic(graph, path_set, steps=6, seed=1):
    state = NetworkState(graph, path_set)
    for m in synthetic_traffic(graph, steps=steps, seed=seed).tm:
        state.push_matrix(m)
    return state


def test_one_set_of_weights_is_trained_on_every_topology(generalist):
    trainer, _ = generalist
    nets = [t.net for t in trainer.tasks + trainer.validation]
    assert len({t.encoding.path_set.n_nodes for t in trainer.tasks}) == 2
    assert all(n.update is nets[0].update and n.start is nets[0].start for n in nets)
    # the update network learned something: rounds start as no-ops (zero last layer)
    assert trainer.shared.update[-1].weight.abs().sum() > 0
    assert [h["epoch"] for h in trainer.history] == [1, 2]


def test_the_same_seed_trains_the_same_generalist():
    a, b = tiny_trainer(), tiny_trainer()
    a.fit(), b.fit()
    for (name, x), y in zip(a.shared.state_dict().items(), b.shared.state_dict().values()):
        assert torch.equal(x, y), name


def test_the_generalist_decides_on_a_topology_it_never_saw_without_transfer(generalist):
    _, path = generalist
    graph = load_topology("nsfnet")
    ps = PathSet.from_graph(graph, k=4)
    agent = load_agent(path, ps, "nsfnet")
    assert agent.metadata["scale_free"] and training_demand(agent) is None
    decision = agent.decide(state_with_traffic(graph, ps))
    assert decision.validate() == []


def odd_topologies():
    """Trees, a star, a line, and a 161-node backbone that is almost a tree (one or two
    candidate paths for most OD pairs), traffic entering at a subset of its nodes."""
    star = nx.star_graph(7)
    line = nx.path_graph(6)
    tree = nx.Graph(nx.random_labeled_tree(161, seed=4))
    rng = np.random.default_rng(4)
    while tree.number_of_edges() < 166:
        a, b = map(int, rng.integers(161, size=2))
        if a != b:
            tree.add_edge(a, b)
    for name, g, hosts in (("star", star, None), ("line", line, None),
                           ("tree161", tree, set(range(0, 161, 8)))):
        d = nx.DiGraph(name=name)
        d.add_nodes_from((f"n{i}", {"hosts": hosts is None or i in hosts}) for i in sorted(g))
        for a, b in g.edges:
            cap = 100.0 * (1 + (a + b) % 3)
            d.add_edge(f"n{a}", f"n{b}", capacity_mbps=cap)
            d.add_edge(f"n{b}", f"n{a}", capacity_mbps=cap)
        yield name, d


@pytest.mark.parametrize("name,graph", list(odd_topologies()), ids=lambda x: x
                         if isinstance(x, str) else "")
def test_the_generalist_never_emits_an_invalid_decision(generalist, name, graph):
    _, path = generalist
    ps = PathSet.from_graph(graph, k=4)
    agent = load_agent(path, ps, name)
    state = state_with_traffic(graph, ps, steps=4)
    assert agent.decide(state).validate() == []
    # a link down that leaves every OD pair a live candidate, and extreme, lopsided traffic
    for u, v in ps.edges:
        try:
            agent.encoding.live_candidates({(u, v), (v, u)})
        except ValueError:
            continue
        state.set_link_up(u, v, False)
        state.set_link_up(v, u, False)
        break
    lopsided = np.zeros((ps.n_nodes, ps.n_nodes))
    lopsided[0, 1:] = 1e9
    lopsided[1:, 0] = 1e-9
    state.push_matrix(lopsided)
    decision = agent.decide(state)
    assert decision.validate(state.down_links) == []


# ---------------------------------------------------------------------- --model default
@pytest.fixture
def models_dir(tmp_path, monkeypatch, generalist):
    """A model folder with the shipped Abilene model and the tiny generalist."""
    shutil.copy(model_file.DEFAULT_DIR / "abilene.zip", tmp_path / "abilene.zip")
    shutil.copy(generalist[1], tmp_path / "generalist.zip")
    monkeypatch.setattr(model_file, "DEFAULT_DIR", tmp_path)
    monkeypatch.setattr(model_file, "GENERALIST", tmp_path / "generalist.zip")
    return tmp_path


def test_default_is_the_topologys_own_model_where_there_is_one(models_dir):
    graph = load_topology("abilene")
    ps = PathSet.from_graph(graph, k=4)
    path, why = resolve_default("abilene", ps)
    assert path == models_dir / "abilene.zip" and why == "the shipped model of abilene"
    agent = load_agent("default", ps, "abilene")
    assert agent.metadata["resolved"] == "default: abilene.zip, the shipped model of abilene"
    assert "generalist" not in agent.metadata and training_demand(agent) > 0


def test_default_is_the_generalist_elsewhere_and_says_why(models_dir, tmp_path):
    ps = PathSet.from_graph(load_topology("nsfnet"), k=4)
    path, why = resolve_default("nsfnet", ps)
    assert path == models_dir / "generalist.zip"
    assert why == "the generalist (no shipped model for topology 'nsfnet')"
    # a user's file that happens to be called abilene.json but is another network
    ring = PathSet.from_graph(load_topology("ring:n=5"), k=4)
    path, why = resolve_default(str(tmp_path / "abilene.json"), ring)
    assert path == models_dir / "generalist.zip"
    assert re.search(r"the generalist \(shipped model abilene.zip was trained for topology "
                     r"abilene \(12 nodes", why)
    agent = load_agent("default", ps, "nsfnet")
    assert agent.metadata["resolved"].startswith("default: generalist.zip, the generalist")


def test_no_generalist_is_a_clear_error(models_dir):
    (models_dir / "generalist.zip").unlink()
    ps = PathSet.from_graph(load_topology("nsfnet"), k=4)
    with pytest.raises(ModelFileError, match="no shipped model for topology 'nsfnet', and no "
                                             "generalist model"):
        load_agent("default", ps, "nsfnet")


def test_a_modified_generalist_is_refused(generalist, tmp_path):
    _, path = generalist
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "weights.pt":
                data = data[:-10] + bytes(10)
            dst.writestr(item, data)
    ps = PathSet.from_graph(load_topology("nsfnet"), k=4)
    with pytest.raises(ModelFileError, match="checksum mismatch for weights.pt"):
        load_agent(bad, ps, "nsfnet")


# ---------------------------------------------------------------------- data and split
def test_variants_and_drifting_traffic():
    graph = load_topology("abilene")
    rng = np.random.default_rng(0)
    uniform = capacity_variant(graph, "uniform", rng)
    assert len({c for _, _, c in uniform.edges(data="capacity_mbps")}) == 1
    perturbed = capacity_variant(graph, "perturbed", rng)
    for u, v, c in perturbed.edges(data="capacity_mbps"):
        assert c == perturbed.edges[v, u]["capacity_mbps"]  # both directions alike
        assert 0.25 <= c / graph.edges[u, v]["capacity_mbps"] <= 4.0
    series = drifting_traffic(graph, 24, seed=3)
    first, last = (m / m.sum() for m in series.tm[[0, -1]])
    start, end = (synthetic_traffic(graph, 24, seed=s).tm for s in (3, 4))
    np.testing.assert_allclose(first, start[0] / start[0].sum())
    np.testing.assert_allclose(last, end[-1] / end[-1].sum(), rtol=1e-6)


def family(name: str) -> str:
    return re.sub(r"((Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)?\d{4,})$", "", name)


def test_held_out_validation_and_training_never_share_a_network():
    assert len(HELD_OUT) >= 40 and not set(HELD_OUT) & set(VALIDATION)
    if not zoo_dir().is_dir():
        pytest.skip(f"shared zoo topologies absent ({zoo_dir()})")
    train = training_topologies(1000)
    held = {family(n) for n in HELD_OUT}
    assert not {family(n) for n in train} & (held | {family(n) for n in VALIDATION})
    assert {n for n in HELD_OUT if not (zoo_dir() / f"{n}.json").is_file()} == set()
    sizes = sorted(load_topology(zoo_dir() / f"{n}.json").number_of_nodes() for n in HELD_OUT)
    assert sizes[0] < 10 and sizes[len(sizes) // 2] >= 20 and sizes[-1] > 100  # spread


def test_the_shipped_generalist_never_trained_on_a_held_out_network():
    if not model_file.GENERALIST.is_file():
        pytest.fail(f"the generalist {model_file.GENERALIST} is not shipped")
    metadata, _ = model_file.read_model(model_file.GENERALIST)
    names = metadata["generalist"]["train"]
    assert names and not {family(n) for n in names} & {family(n) for n in HELD_OUT}
    assert not set(metadata["generalist"]["validation"]) & set(HELD_OUT)


def test_ray_prepares_the_same_tasks_as_one_process():
    """Local Ray (what CI runs; a cluster only changes the address): same tasks, same model."""
    pytest.importorskip("ray", reason="Ray is the optional extra ryute[cluster]")
    import ray

    config = GeneralistConfig(**{**TINY.__dict__, "epochs": 1})
    names = dict(train_names=["ring:n=5", "fat-tree:k=4"], validation_names=["ring:n=6"])
    try:
        on_ray = GeneralistTrainer(config, ray_address="local", **names)
        on_ray.fit()
    finally:
        ray.shutdown()
    here = GeneralistTrainer(config, **names)
    here.fit()
    assert [t.name for t in on_ray.tasks] == [t.name for t in here.tasks]
    for a, b in zip(on_ray.tasks, here.tasks):
        assert a.encoding.path_set == b.encoding.path_set and a.down == b.down
        np.testing.assert_array_equal(a.samples.optima, b.samples.optima)
    for x, y in zip(on_ray.shared.state_dict().values(), here.shared.state_dict().values()):
        assert torch.equal(x, y)


def test_fine_tuning_starts_from_the_generalists_weights(generalist):
    from agents.train import TrainConfig, Trainer, init_shape

    trainer, path = generalist
    graph = load_topology("ring:n=5")
    series = synthetic_traffic(graph, steps=120, seed=5)
    shape = init_shape(str(path))
    assert shape == {"network": "path", "path_hidden": 8, "path_rounds": 2, "path_trend": True,
                     "paths_k": 8, "path_method": "te"}  # it keeps the generalist's paths too
    tuned = Trainer(graph, series, TrainConfig(**shape, init=str(path), history=3, epochs=1,
                                               validation="24", test="24", timesteps=0))
    assert (tuned.path_set.k, tuned.path_set.method) == (8, "te")
    for name, value in trainer.shared.state_dict().items():
        if name.startswith(("start.", "update.")):
            assert torch.equal(tuned.net.state_dict()[name], value), name
    with pytest.raises(ModelFileError, match="--init needs a PathNet of the configured shape"):
        Trainer(graph, series, TrainConfig(network="path", init=str(path), history=3,
                                           validation="24", test="24", timesteps=0))


# ---------------------------------------------------------------------- the model's paths
def test_a_model_names_the_candidate_paths_it_runs_on(models_dir, tmp_path):
    from agents.model_file import DEFAULT_PATHS, model_paths, paths_of

    # the generalist is deployed on its validated recipe, a topology's own model on its own
    assert model_paths("default", "nsfnet") == (8, "te")
    assert model_paths(models_dir / "generalist.zip") == (8, "te")
    assert model_paths("default", "abilene") == (4, "hops")
    assert paths_of({"path_set": {"k": 6, "method": "invcap"}}) == (6, "invcap")
    for bad in ({"deploy_paths": {"k": 0, "method": "te"}}, {"deploy_paths": {"method": "yen"}},
                {"deploy_paths": [8]}, {}):
        assert paths_of(bad) == DEFAULT_PATHS
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    assert model_paths(tmp_path / "broken.zip") == DEFAULT_PATHS  # loading it says why


def test_the_controller_builds_the_models_paths_unless_told_otherwise(models_dir, monkeypatch):
    from controller.config import ControllerConfig
    from controller.plane import ControlPlane, candidate_paths

    monkeypatch.delenv("RYUTE_CONFIG", raising=False)

    def config(**values):
        return ControllerConfig.load(None, topology="nsfnet", **values)

    assert candidate_paths(config(model="default")) == (8, "te")
    assert candidate_paths(config(model="default", paths_k=6)) == (6, "te")
    assert candidate_paths(config(model="default", path_method="hops")) == (8, "hops")
    assert candidate_paths(config()) == (4, "hops")  # no model: the core's default
    assert candidate_paths(ControllerConfig.load(None, topology="abilene", model="default")) \
        == (4, "hops")
    plane = ControlPlane(config(model="default"))
    path_set = plane.view.state.path_set
    assert (path_set.k, path_set.method) == (8, "te")
    assert plane.load_model("default").startswith("generalist.zip")


def test_evaluate_puts_every_method_on_the_agents_paths(models_dir, tmp_path):
    import json

    from lab.cli import main

    out = tmp_path / "eval.json"
    assert main(["evaluate", "--topology", "nsfnet", "--traffic", "synthetic:steps=16",
                 "--methods", "agent,lp_last", "--model", "default", "--last", "3",
                 "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert (document["paths_k"], document["path_method"]) == (8, "te")
    assert main(["evaluate", "--topology", "nsfnet", "--traffic", "synthetic:steps=16",
                 "--methods", "lp_last", "--last", "3", "--json", str(out)]) == 0
    assert (json.loads(out.read_text())["paths_k"], json.loads(out.read_text())["path_method"]) \
        == (4, "hops")

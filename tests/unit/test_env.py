"""The gymnasium environment: API conformance, seeding, rewards against hand-computed values, the
"score the next matrix" rule, missing matrices, failures, vectorization, and the shared encoding."""

import math
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim.decision import Decision
from sim.env import ENV_ID, TEEnv
from sim.loads import link_loads, mlu
from sim.optimal import optimal_mlu, path_optimal
from sim.state import NetworkState
from topologies.catalog import load_topology
from topologies.traffic import TrafficSeries, load_traffic, shared_data_dir, synthetic_traffic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("optima")


@pytest.fixture(scope="module")
def ring():
    return load_topology("ring:n=5")


@pytest.fixture(scope="module")
def ring_traffic(ring):
    return synthetic_traffic(ring, steps=80, seed=3)


def hand_series(*matrices):
    """A series on ring:n=4 (s1..s4, 1000 Mbit/s) from {(src, dst): Mbit/s} dicts."""
    nodes = ("s1", "s2", "s3", "s4")
    tm = np.zeros((len(matrices), 4, 4))
    for t, demands in enumerate(matrices):
        for (s, d), x in demands.items():
            tm[t, nodes.index(s), nodes.index(d)] = x
    return TrafficSeries(tm, nodes, source="hand")


A = {("s1", "s2"): 100.0}
B = {("s3", "s4"): 300.0, ("s1", "s2"): 10.0}


def hand_env(cache, *matrices, **kwargs):
    kwargs = {"history": 1, "episode_length": 1, "cache_dir": cache} | kwargs
    return TEEnv("ring:n=4", hand_series(*matrices), **kwargs)


def run(env, seed, actions):
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info))
        if truncated:
            obs, info = env.reset()
            out.append((obs, info))
    return out


# ---------------------------------------------------------------------- API conformance
def test_check_env_passes_without_warnings(ring_traffic, cache):
    env = gym.make(ENV_ID, topology="ring:n=5", traffic=ring_traffic, episode_length=8,
                   failure_prob=0.5, cache_dir=cache).unwrapped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
        from stable_baselines3.common.env_checker import check_env as sb3_check_env
        sb3_check_env(env)
    assert [str(w.message) for w in caught] == []


def test_make_after_import_sim(tmp_path):
    """``import sim`` is enough for the registered id (issue 17: it needed ``import sim.env``)."""
    code = (
        "import sim, gymnasium\n"
        "env = gymnasium.make('ryute/TE-v0', topology='ring:n=4', "
        "traffic='synthetic:steps=20,seed=1', history=2, episode_length=4)\n"
        "env.reset(seed=0)\n"
    )
    env = {"RYUTE_OPTIMA_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_make_without_import_and_import_boundaries(tmp_path):
    """``module:id`` loads the env; the env pulls in no os-ken, the TE core no torch and not
    the environment's module (``import sim`` registers it, with gymnasium alone)."""
    code = (
        "import sys\n"
        "import sim.decision, sim.loads, sim.optimal, sim.paths, sim.policy, sim.state\n"
        "import sim.envs.encoding\n"
        "assert 'torch' not in sys.modules and 'sim.env' not in sys.modules\n"
        "import gymnasium\n"
        "env = gymnasium.make('sim.env:ryute/TE-v0', topology='ring:n=4', "
        "traffic='synthetic:steps=20,seed=1', history=2, episode_length=4)\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        "assert not any(m.split('.')[0] == 'os_ken' for m in sys.modules)\n"
    )
    env = {"RYUTE_OPTIMA_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_spaces_and_observation_layout(ring, ring_traffic, cache):
    env = TEEnv(ring, ring_traffic, history=3, episode_length=4, cache_dir=cache)
    enc = env.encoding
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs in env.observation_space
    assert env.action_space.shape == (int(env.path_set.candidate.sum()),)
    assert (env.action_space.low == -1).all() and (env.action_space.high == 1).all()
    shares = obs[enc.layout["shares"]].reshape(3, env.path_set.n_ods)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, rtol=1e-5)
    t = info["t"]
    totals = env.series.tm[t - 3 : t].sum(axis=(1, 2))
    np.testing.assert_allclose(obs[enc.layout["log_scale"]],
                               np.log(totals / enc.scale_reference), rtol=1e-5)
    assert (obs[enc.layout["link_up"]] == 1).all()
    assert enc.layout["link_up"].stop == env.observation_space.shape[0]


# ---------------------------------------------------------------------- seeding
def test_same_seed_same_episodes(ring_traffic, cache):
    def make():
        return TEEnv("ring:n=5", ring_traffic, episode_length=5, failure_prob=0.5,
                     cache_dir=cache)

    actions = np.random.default_rng(0).uniform(-1, 1, (12, make().action_space.shape[0]))
    first, second = run(make(), 7, actions), run(make(), 7, actions)
    for a, b in zip(first, second, strict=True):
        assert gym.utils.env_checker.data_equivalence(a, b, exact=True)
    starts = {make().reset(seed=s)[1]["t"] for s in range(8)}
    assert len(starts) > 1  # different seeds, different episodes


# ---------------------------------------------------------------------- rewards
def test_reward_is_hand_computed_ratio_on_the_next_matrix(cache):
    """History A, decision scored on B: a nearly-all-on-the-first-candidate action."""
    env = hand_env(cache, A, B, A, B)
    obs, info = env.reset(seed=0, options={"start": 1})
    assert info["t"] == 1
    od = env.path_set.od_index("s1", "s2")
    shares = obs[env.encoding.layout["shares"]]
    assert shares[od] == pytest.approx(1.0)  # the observation is matrix 0 (A) ...

    first = env.path_set.od_ptr[:-1]  # the first path of each OD pair, a candidate
    action = env.action_from_weights(Decision.single_path(env.path_set, first))
    _, reward, terminated, truncated, info = env.step(action)
    # ... the score is on matrix 1 (B). Weight on the direct link: 1 / (1 + e^-10) per OD pair.
    # Links s3->s4: 300 w; s1->s4 and s3->s2 carry both long paths: 310 (1 - w). Optimum: 150.
    w = 1 / (1 + math.exp(-10))
    expected_mlu = max(300 * w, 310 * (1 - w)) / 1000
    assert info["t"] == 1 and not terminated and truncated
    assert info["mlu"] == pytest.approx(expected_mlu, rel=1e-9)
    assert info["optimal_mlu"] == pytest.approx(0.15, rel=1e-6)
    assert reward == pytest.approx(-expected_mlu / 0.15, rel=1e-6)
    assert info["ratio"] == pytest.approx(-reward)
    # scored on A it would be a tenth of that
    assert mlu(env.path_set, env.decision_from_action(action), env.series.tm[0]) < 0.11


def test_reward_matches_core_and_independent_lp(ring, ring_traffic, cache):
    env = TEEnv(ring, ring_traffic, episode_length=6, cache_dir=cache)
    env.reset(seed=2)
    uniform = Decision.uniform(env.path_set)  # what a zero action decodes to, exactly
    for _ in range(6):
        _, reward, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
        tm = env.series.tm[info["t"]]
        expected = mlu(env.path_set, uniform, tm) / optimal_mlu(ring, tm)
        assert reward == pytest.approx(-expected, rel=1e-9)
        assert reward <= -1 + 1e-9


def test_batched_score_equals_steps(ring_traffic, cache):
    env = TEEnv("ring:n=5", ring_traffic, episode_length=10, cache_dir=cache)
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (10, env.action_space.shape[0])).astype(np.float32)
    env.reset(seed=5)
    stepped = [env.step(a)[4] for a in actions]
    times = [info["t"] for info in stepped]
    ratios = env.score(env.encoding.weights(actions), times)
    np.testing.assert_allclose(ratios, [info["ratio"] for info in stepped], rtol=1e-12)


def test_action_from_weights_round_trips_an_lp_split(ring, ring_traffic, cache):
    env = TEEnv(ring, ring_traffic, episode_length=4, cache_dir=cache)
    t = int(env.decision_times[3])
    best, split = path_optimal(env.path_set, env.series.tm[t])
    action = env.action_from_weights(split)
    assert action in env.action_space
    ratio = env.score(env.encoding.weights(action)[None], [t])[0]
    assert ratio == pytest.approx(best / optimal_mlu(ring, env.series.tm[t]), rel=1e-3)


class DoubledEnv(TEEnv):
    """An environment that routes elsewhere: its hook "measures" twice the fluid loads."""

    def _route(self, t, weights):
        loads = 2.0 * link_loads(self.path_set, weights, self.series.tm[t])
        return float((loads / self.path_set.capacities).max()), loads, {"measured": True}


def test_the_routing_hook_alone_decides_mlu_reward_and_next_utilization(ring_traffic, cache):
    fluid = TEEnv("ring:n=5", ring_traffic, episode_length=3, cache_dir=cache)
    other = DoubledEnv("ring:n=5", ring_traffic, episode_length=3, cache_dir=cache)
    fluid.reset(seed=4)
    other.reset(seed=4)
    action = np.random.default_rng(1).uniform(-1, 1, fluid.action_space.shape)
    obs_f, reward_f, _, _, info_f = fluid.step(action)
    obs_o, reward_o, _, _, info_o = other.step(action)
    assert info_o["mlu"] == pytest.approx(2 * info_f["mlu"]) and reward_o == pytest.approx(2 * reward_f)
    assert info_o["optimal_mlu"] == info_f["optimal_mlu"] and info_o["measured"] is True
    util = fluid.encoding.layout["utilization"]
    np.testing.assert_allclose(obs_o[util], np.minimum(2 * obs_f[util], 10.0), rtol=1e-6)


# ---------------------------------------------------------------------- missing matrices
def test_zero_matrices_are_skipped(cache):
    env = hand_env(cache, A, B, {}, A, B, episode_length=2)
    assert list(env.decision_times) == [1, 3, 4]
    assert env.encoding.scale_reference == pytest.approx((100 + 310 + 100 + 310) / 4)
    with pytest.raises(ValueError, match="not a decision interval"):
        env.reset(options={"start": 2})
    env.reset(seed=0, options={"start": 1})
    obs, reward, _, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert (info["t"], truncated) == (1, False)
    shares = obs[env.encoding.layout["shares"]]
    assert shares[env.path_set.od_index("s3", "s4")] == pytest.approx(300 / 310)  # B, not zeros
    assert np.isfinite(obs).all() and np.isfinite(reward)
    _, reward, _, truncated, info = env.step(np.zeros(env.action_space.shape, np.float32))
    assert (info["t"], truncated) == (3, True) and np.isfinite(reward)
    with pytest.raises(ValueError, match="no demand"):
        env.score(np.ones((1, env.path_set.n_paths)), [2])


def test_too_short_range_is_a_clear_error(cache):
    with pytest.raises(ValueError, match="decision intervals"):
        hand_env(cache, A, B, A, episode_length=3)


def test_interval_range_bounds_the_scored_matrices(ring_traffic, cache):
    env = TEEnv("ring:n=5", ring_traffic, episode_length=None, interval_range=(40, 60),
                cache_dir=cache)
    assert list(env.decision_times) == list(range(40, 60))
    out = run(env, 0, np.zeros((20, env.action_space.shape[0])))
    assert [step[4]["t"] for step in out if len(step) == 5] == list(range(40, 60))


# ---------------------------------------------------------------------- failures
def test_failure_episodes_avoid_the_down_link(ring, ring_traffic, cache):
    env = TEEnv(ring, ring_traffic, episode_length=3, failure_prob=1.0, cache_dir=cache)
    assert len(env.failable_links) == 5  # every ring link leaves each OD pair one path
    rng = np.random.default_rng(0)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        down = info["down_links"]
        assert len(down) == 2 and down[0] == down[1][::-1]
        for _ in range(3):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            assert env.decision_from_action(action).validate(down) == []
            obs, _, _, _, info = env.step(action)
            dead = env.path_set.link_mask(down)
            assert (obs[env.encoding.layout["link_up"]][dead] == 0).all()
            assert (obs[env.encoding.layout["utilization"]][dead] == 0).all()
            tm = env.series.tm[info["t"]]
            assert info["optimal_mlu"] == pytest.approx(optimal_mlu(ring, tm, down), rel=1e-9)
            assert info["optimal_mlu"] > optimal_mlu(ring, tm) * (1 - 1e-9)


def test_links_that_would_cut_an_od_pair_never_fail(cache):
    env = TEEnv("linear:n=3", "synthetic:steps=20,seed=0", history=2, episode_length=2,
                failure_prob=1.0, cache_dir=cache)
    assert env.failable_links == []
    assert env.reset(seed=0)[1]["down_links"] == ()
    with pytest.raises(ValueError, match="no live candidate"):
        env.reset(options={"down_link": ("s1", "s2")})


# ---------------------------------------------------------------------- vectorization
def test_vector_envs_run(ring_traffic, cache):
    vec = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", topology="ring:n=5",
                       traffic=ring_traffic, episode_length=3, cache_dir=cache)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (2, vec.single_observation_space.shape[0])
    for _ in range(7):  # across episode ends (next-step autoreset)
        obs, _, terminated, _, _ = vec.step(vec.action_space.sample())
        assert obs.shape[0] == 2 and np.isfinite(obs).all() and not terminated.any()
    vec.close()
    sync = gym.vector.SyncVectorEnv(
        [lambda: TEEnv("ring:n=5", ring_traffic, episode_length=3, cache_dir=cache)] * 2)
    sync.reset(seed=1)
    _, reward, _, _, _ = sync.step(sync.action_space.sample())
    assert (reward <= -1 + 1e-9).all()
    sync.close()


# ---------------------------------------------------------------------- train/serve encoding
def test_controller_state_encodes_like_the_env(ring, ring_traffic, cache):
    """The agent in the controller sees exactly what it saw in training (one encoder)."""
    env = TEEnv(ring, ring_traffic, history=4, episode_length=3, cache_dir=cache)
    env.reset(seed=4)
    action = np.random.default_rng(2).uniform(-1, 1, env.action_space.shape)
    obs, _, _, _, info = env.step(action)
    t = info["t"]
    state = NetworkState(ring.copy(), env.path_set, history_len=4)
    for m in env.series.tm[t - 3 : t + 1]:
        state.push_matrix(m)
    state.set_loads(link_loads(env.path_set, env.decision_from_action(action), env.series.tm[t]))
    np.testing.assert_array_equal(env.encoding.observe_state(state), obs)


# ---------------------------------------------------------------------- real data (licensed)
def test_real_geant_series_skips_its_missing_matrices(cache):
    path = shared_data_dir() / "traffic" / "geant-20050504-20050507.tm.npz"
    if not path.exists():
        pytest.skip(f"real GEANT matrices not available at {path} (never copied into the repo)")
    env = TEEnv("geant", load_traffic(path), episode_length=8, interval_range=(0, 24),
                cache_dir=cache)
    assert env.decision_times[0] == 14  # matrices 0 and 1 are missing: 12 usable ones before 14
    env.reset(seed=0)
    for _ in range(8):
        obs, reward, _, _, _ = env.step(env.action_space.sample())
        assert np.isfinite(obs).all() and reward <= -1 + 1e-9

"""Simulator throughput: environment steps per second (single and vectorized) and decisions
scored per second in batches, on one core.

    .venv/bin/python -m benchmarks.simulator [--out benchmarks/results/simulator.json]

Uses the real Abilene and GEANT series when present, else a synthetic week (said in the JSON).
"""
from __future__ import annotations

import argparse
import os
import time

import gymnasium
import numpy as np

from benchmarks.common import emit, traffic_file
from sim.env import TEEnv

CASES = [("abilene", "abilene-20040301-20040314.tm.npz"),
         ("geant", "geant-20050504-20050507.tm.npz")]


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1)


def single_steps(env: TEEnv, steps: int) -> float:
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, env.action_space.shape[0]))
    started = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action.astype(np.float32))
        if terminated or truncated:
            env.reset()
    return rate(steps, time.perf_counter() - started)


def vector_steps(make, n_envs: int, steps: int) -> float:
    envs = gymnasium.vector.SyncVectorEnv([make] * n_envs)
    envs.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps):
        envs.step(envs.action_space.sample())
    seconds = time.perf_counter() - started
    envs.close()
    return rate(steps * n_envs, seconds)


def batched_scoring(env: TEEnv, batch: int, rounds: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    times = rng.choice(env.decision_times, size=batch)
    actions = rng.uniform(-1, 1, (batch, env.action_space.shape[0])).astype(np.float32)
    weights = env.encoding.weights(actions, ())
    started = time.perf_counter()
    for _ in range(rounds):
        env.score(weights, times)
    scored = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(rounds):
        env.score(env.encoding.weights(actions, ()), times)
    decoded = time.perf_counter() - started
    return {"batch": batch, "weights_scored_per_s": rate(batch * rounds, scored),
            "actions_decoded_and_scored_per_s": rate(batch * rounds, decoded)}


def run_case(topology: str, traffic_name: str) -> dict:
    path = traffic_file(traffic_name)
    traffic = str(path) if path else "synthetic"
    make = lambda: TEEnv(topology=topology, traffic=traffic)  # noqa: E731
    env = make()
    return {
        "traffic": traffic_name if path else "synthetic week (shared data absent)",
        "paths": env.path_set.n_paths, "actions": int(env.action_space.shape[0]),
        "observation": int(env.observation_space.shape[0]),
        "single_env_steps_per_s": single_steps(env, 3000),
        "vector_env_8_steps_per_s": vector_steps(make, 8, 400),
        "batched": batched_scoring(env, 4096, 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target
    emit({"benchmark": "simulator", "one_core": True,
          "results": {topology: run_case(topology, name) for topology, name in CASES}}, args.out)


if __name__ == "__main__":
    main()

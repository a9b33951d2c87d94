"""A disturbed replay is measured again (lab.mininet_env, item 4 of the module docstring).

The replay itself needs Mininet; what is tested here is the rule on top of it, with replays
whose losses are scripted (a CPU stall of the machine cannot be injected on demand)."""
import logging

import numpy as np
import pytest

from lab.mininet_env import MininetTEEnv


class ScriptedReplays(MininetTEEnv):
    def __init__(self, losses: list[float | None], max_loss: float = 0.01, remeasure: int = 2):
        # no testbed: only the attributes _measure reads
        self.losses, self.max_loss, self.remeasure, self.replayed = list(losses), max_loss, \
            remeasure, 0

    def _replay(self, t):
        self.replayed += 1
        return 0.5 + self.replayed, np.zeros(1), 3, self.losses.pop(0)


@pytest.mark.parametrize("losses, replays", [
    ([0.0], 1), ([0.01], 1), ([None], 1),          # clean (or nothing sent): measured once
    ([0.03, 0.002], 2), ([0.03, 0.06, 0.0], 3),     # disturbed: replayed until clean
])
def test_a_replay_is_repeated_until_it_loses_at_most_max_loss(losses, replays):
    env = ScriptedReplays(losses)
    (mlu, _, _, loss), attempts = env._measure(7)
    assert attempts == replays == env.replayed
    assert mlu == 0.5 + replays and loss == losses[replays - 1]  # the last replay counts


def test_at_most_remeasure_extra_replays_and_the_last_one_is_reported(caplog):
    env = ScriptedReplays([0.05, 0.04, 0.03, 0.0], remeasure=2)
    with caplog.at_level(logging.WARNING, "lab.mininet_env"):
        (_, _, _, loss), attempts = env._measure(7)
    assert attempts == 3 and loss == 0.03 and env.losses == [0.0]
    assert sum("measuring again" in r.message for r in caplog.records) == 2


def test_remeasure_zero_measures_once():
    env = ScriptedReplays([0.5], remeasure=0)
    assert env._measure(0)[1] == 1


@pytest.mark.parametrize("kwargs", [{"max_loss": 1.0}, {"max_loss": -0.1}, {"remeasure": -1}])
def test_bad_remeasure_settings_are_refused_before_any_testbed_starts(kwargs):
    with pytest.raises(ValueError, match="max_loss"):
        MininetTEEnv("ring:n=5", "synthetic", interval_s=2.0, **kwargs)

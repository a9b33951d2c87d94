"""The measured-MLU estimator of ``ryute emulate`` and the Mininet environment."""

import numpy as np
import pytest

from lab.emulation import Reading, interval_mlu

EDGES = [("a", "b"), ("b", "a"), ("b", "c")]


def reading(at, **utilization):
    """A reading with the utilization of links named by two letters (``ab`` is a->b)."""
    util = {(name[0], name[1]): value for name, value in utilization.items()}
    return Reading(at=at, start=at - 1.0, utilization=util, load_mbps={}, od_mbps=None)


def test_the_mlu_of_an_interval_is_that_of_the_mean_utilization():
    # two balanced links whose readings fluctuate in turn: each reading's busiest link is at 0.7,
    # the mean load of both is 0.5 (what the fluid model predicts)
    readings = [reading(1.0, ab=0.7, ba=0.1, bc=0.3), reading(2.0, ab=0.3, ba=0.1, bc=0.7)]
    mlu, mean_util = interval_mlu(readings, EDGES)
    assert mlu == pytest.approx(0.5)
    np.testing.assert_allclose(mean_util, [0.5, 0.1, 0.5])
    assert np.mean([r.mlu for r in readings]) == pytest.approx(0.7)  # the biased estimate


def test_links_no_reading_measured_count_as_idle_and_empty_readings_are_skipped():
    readings = [reading(1.0, ab=0.4), reading(2.0), reading(3.0, ab=0.6, bc=0.2)]
    mlu, mean_util = interval_mlu(readings, EDGES)
    assert mlu == pytest.approx(0.5)
    np.testing.assert_allclose(mean_util, [0.5, 0.0, 0.2])


def test_no_reading_with_utilization_gives_none():
    assert interval_mlu([], EDGES) is None
    assert interval_mlu([reading(1.0)], EDGES) is None

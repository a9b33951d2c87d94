"""The lab's rules in one place: how far emulated capacities are scaled down, how often the
controller reads its statistics during a replay, and where in a series a replay starts.

``ryute emulate`` (and ``ryute demo``), the Mininet environment (:mod:`lab.mininet_env`),
``ryute train --env mininet`` (:mod:`lab.mininet_train`) and the :class:`~lab.testbed.Testbed`
take their defaults from here. (:mod:`topologies.mininet` keeps its own default ``scale`` for
``mn --custom``: the lab always passes this one.)
"""
from __future__ import annotations

CAPACITY_SCALE = 1000.0
"""Emulated capacities (and the replayed traffic) are the topology's divided by this: Mininet
shapes at most 1000 Mbit/s per link and the userspace switches of one machine forward a few
tens of Mbit/s in all; at 1000 a 10 Gbit/s link is shaped to 10 Mbit/s."""

POLL_RANGE_S = (0.5, 2.0)
"""Bounds of the controller's statistics interval in a replay: below 0.5 s a reading holds too
few datagrams of an OD pair for its split to show, and the controller's load grows; above 2 s
an interval holds few readings."""

READINGS_PER_INTERVAL = 4
"""Statistics readings per replay interval, within :data:`POLL_RANGE_S` (10 s intervals, the
demo's, get the 2 s maximum: five readings, three of them steady for ``ryute emulate``)."""

SYNTHETIC_START = 120
"""First replayed matrix of a synthetic series: 10:00 of its first day (5-minute matrices),
when the diurnal cycle is near its busy hours."""

HELD_OUT_SHARE = 0.2
"""A series from a file is replayed from the start of its last 20 %: its end is where
``ryute train``'s split puts the test part it never trains on."""


def poll_interval_for(interval_s: float) -> float:
    """The controller's statistics interval for replay intervals of ``interval_s`` seconds:
    ``interval_s / READINGS_PER_INTERVAL`` within :data:`POLL_RANGE_S`."""
    low, high = POLL_RANGE_S
    return max(low, min(high, interval_s / READINGS_PER_INTERVAL))


def default_start(traffic: str, n: int) -> int:
    """The first replayed matrix of ``traffic`` (a spec or a file) of ``n`` matrices:
    :data:`SYNTHETIC_START` for the synthetic generator, else the start of the held-out part."""
    if str(traffic).startswith("synthetic"):
        return SYNTHETIC_START
    return int(n * (1.0 - HELD_OUT_SHARE))

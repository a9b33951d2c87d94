"""Fixtures that start real networks: OVS userspace switches in Mininet + a controller process."""
from __future__ import annotations

import json

import pytest

from lab.testbed import Testbed

MEASUREMENTS: list[tuple[str, str, object]] = []
"""(test, name, value) of every ``measure`` call: printed at the end of the run."""


@pytest.fixture(scope="module")
def abilene():
    with Testbed("abilene") as testbed:
        yield testbed


@pytest.fixture(scope="module")
def network():
    """Abilene with every link discovered and every host known (one pingAll, no loss)."""
    import expectations as ex

    with Testbed("abilene") as testbed:
        ex.wait_until_ready(testbed)
        assert testbed.net.pingAll(timeout=2) == 0
        yield testbed


@pytest.fixture
def measure(request, record_property):
    """``measure(name, value)``: keep a measurement (printed in the run's summary and
    recorded as a JUnit property)."""
    def record(name: str, value: object) -> None:
        MEASUREMENTS.append((request.node.nodeid, name, value))
        record_property(name, value)
    return record


def pytest_terminal_summary(terminalreporter):
    if not MEASUREMENTS:
        return
    terminalreporter.section("measurements")
    for nodeid, name, value in MEASUREMENTS:
        terminalreporter.write_line(f"{nodeid.split('::')[-1]}: {name} = {json.dumps(value)}")

"""Fixtures that start real networks: OVS userspace switches in Mininet + a controller process."""
from __future__ import annotations

import pytest

from sim.testbed import Testbed


@pytest.fixture(scope="module")
def abilene():
    with Testbed("abilene") as testbed:
        yield testbed

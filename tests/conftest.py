"""Shared test settings: integration tests need root and Open vSwitch, and say so when skipped."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    from sim.testbed import TestbedError, check_environment

    try:
        check_environment()
        reason = None
    except TestbedError as error:
        reason = f"integration test skipped: {error}"
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))

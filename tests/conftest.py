"""Shared test settings: integration tests need root and Open vSwitch, and say so when skipped."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    from lab.testbed import TestbedError, check_environment

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


@pytest.fixture(scope="session")
def ring_model(tmp_path_factory):
    """A tiny agent for ring:n=5, trained on a synthetic series (seconds; loadable, not good)."""
    from agents.model_file import save_model
    from agents.train import TrainConfig, Trainer
    from topologies.catalog import load_topology
    from topologies.traffic import synthetic_traffic

    graph = load_topology("ring:n=5")
    series = synthetic_traffic(graph, steps=288, seed=3, load=0.5)
    config = TrainConfig(history=4, hidden=(32,), epochs=2, batch_size=16, augment=0.0,
                         validation="48", test="48", timesteps=0)
    trainer = Trainer(graph, series, config, cache_dir=tmp_path_factory.mktemp("optima"))
    path = tmp_path_factory.mktemp("models") / "ring5.zip"
    save_model(path, trainer.fit(), trainer.metadata("ring5"))
    return path


# -- a real browser (the dashboard's tests: tests/unit and tests/integration) -----------------
@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.errors = []  # console errors and uncaught exceptions
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: page.errors.append(f"uncaught: {error}"))
    yield page
    context.close()

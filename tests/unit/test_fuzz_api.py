"""Property-based fuzzing of every REST endpoint of a live ``ryute controller`` (issue 15).

Schemathesis reads the controller's own OpenAPI document, built from its route table (so an
endpoint added later is fuzzed with no change here), and sends schema-valid and
schema-violating requests, each with the right token and again with a wrong one, one that
``str.strip`` would empty, or none. For every answer: no
5xx, what the document says (status, content type, schema; schema violations refused), every
error a JSON object with its reason; a refused request leaves the controller's state (mode,
rollout, model, decision count) as it was; the controller stays up.

Bounded for ``make test`` (``RYUTE_FUZZ_EXAMPLES`` examples per operation, default
30, deterministic); ``benchmarks/fuzz.py`` runs it longer, at random.
"""
from __future__ import annotations

import itertools
import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api import endpoints
from api.client import ControllerClient
from controller.app import RyuteApp
from controller.config import ControllerConfig

TOKEN = "fuzz-token-0123456789abcdef"
EXAMPLES = int(os.environ.get("RYUTE_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def live(module_controller):
    """A controller without switches, with a model and a token; no poll round during the run
    (a decision then comes only from a request)."""
    return module_controller("--model", "default", "--poll-interval", "3600",
                             env={"RYUTE_API_TOKEN": TOKEN}).wait_ready(timeout_s=60)


def served_document() -> dict:
    """The document the controller serves, built from its route table (pytest collects the
    tests before any controller runs; the first test checks the live one is the same)."""
    return RyuteApp(ryute_config=ControllerConfig(topology="abilene")).rest_api().document


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                max_examples=EXAMPLES,
                                deterministic=os.environ.get("RYUTE_FUZZ_RANDOM") != "1")


def test_the_fuzzed_document_is_the_one_the_controller_serves(live):
    assert ControllerClient(live.url).openapi() == json.loads(json.dumps(DOCUMENT))


def state(client: ControllerClient) -> tuple:
    status, mode = client.status(), client.mode()
    latest = client.decision_page(1)["decisions"]
    return (status["mode"], status["model"], mode["rollout"],
            latest[0]["seq"] if latest else None)


WRONG = itertools.cycle([None, "Bearer wrong", "Bearer \x0c", f"Bearer {TOKEN}\xa0",
                         f"bearer {TOKEN}", "Basic eDp4"])
PROTECTED = {(e.method, e.path) for e in endpoints.ENDPOINTS if e.auth != "none"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_endpoint_holds_under_fuzzing(case, live, record_property):
    """Each case twice: with the token, and with a wrong, mangled or missing one."""
    record_property("operation", f"{case.operation.method.upper()} {case.operation.path}")
    client = ControllerClient(live.url, timeout_s=30)
    for auth in (f"Bearer {TOKEN}", next(WRONG)):
        before = state(client)
        headers = {"Authorization": auth} if auth is not None else {}
        response = case.call(base_url=live.url, headers=headers, timeout=60)
        # a schema-valid request may still be refused for what a schema cannot say (a path
        # that is no model file, weights in shadow mode): only its refusal is checked, below
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        assert response.status_code < 500, response.text
        if auth != f"Bearer {TOKEN}" and (case.method, case.path) in PROTECTED:
            assert response.status_code >= 400, (case.method, case.path, auth)
        if response.status_code >= 400:
            answer = response.json()
            assert set(answer) == {"error"} and answer["error"].strip(), answer
            assert state(client) == before, (case.method, case.path, response.status_code,
                                             answer)
        assert live.process.poll() is None, live.output()[-3000:]


def test_the_controller_is_alive_and_logged_no_traceback(live):
    assert live.process.poll() is None and live.call(endpoints.STATUS.path)[0] == 200
    assert "Traceback" not in live.output() and "RecursionError" not in live.output()

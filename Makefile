# ryute: the two commands of the README do all the set-up (idempotent).
#   make test       unit + integration tests (root: Debian packages, Open vSwitch, Mininet)
#   make demo       the main job on the embedded default (root)
#   make test-unit  fast tests that need neither root nor Open vSwitch
#   make typecheck  mypy on the packages (make test runs it first)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all setup venv system test test-unit test-integration typecheck demo lint clean-venv

all: test

venv:
	@scripts/setup.sh venv

system:
	@scripts/setup.sh system

setup: system venv

test: setup
	$(PY) -m mypy
	$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests -m "not integration" $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest tests -m integration $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/ryute demo

# the packages and options are in pyproject.toml ([tool.mypy])
typecheck: venv
	$(PY) -m mypy

lint: venv
	$(VENV)/bin/ruff check controller agents sim topologies lab ryute tests benchmarks

clean-venv:
	rm -rf $(VENV)

# guardian — make demo | make test | make check | make bench | make setup
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
CACHE ?= $(HOME)/.cache/guardian

.PHONY: setup check test bench demo clean

setup: $(DEPS_STAMP) servers

$(DEPS_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.deps-* && touch $@

.PHONY: servers
servers:
	@scripts/install-prometheus.sh
	@scripts/install-postgresql.sh

check: $(DEPS_STAMP)
	$(BIN)/ruff check guardian tests bench examples lab
	$(BIN)/ruff format --check guardian tests bench examples lab
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check-sizes.py guardian

# The tests run in TEST_WORKERS pytest processes, each given whole modules, the slowest first,
# the modules with labs of their own one after another on one worker (tests/scheduling.py).
# What they share is built first, once, with its progress shown: the lab's binaries (Thanos
# too, for the fleet test) and the incident data.
TEST_WORKERS ?= 3
test: setup check test-deps
	$(BIN)/pytest -q -n $(TEST_WORKERS) --no-loadscope-reorder

.PHONY: test-deps
test-deps: setup
	@lab/build.sh >/dev/null
	@lab/build.sh thanos >/dev/null
	@$(BIN)/python -m tests.incident_data

bench: setup
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/shed.py
	$(BIN)/python bench/requests.py
	$(BIN)/python bench/detection.py --cache $(CACHE)
	$(BIN)/python bench/lab_capacity.py
	$(BIN)/python bench/storm_calls.py

demo: setup
	$(BIN)/python examples/incident-2024-12-11/demo.py --cache $(CACHE)
	$(BIN)/python examples/incident-2024-12-11/live.py
	$(BIN)/python examples/incident-2024-12-11/cascade.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

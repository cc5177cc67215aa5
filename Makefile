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

test: setup check
	$(BIN)/pytest -q

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

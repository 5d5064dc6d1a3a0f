# The one entry point for developers, pre-commit and CI (DESIGN.md §4; CI runs .ci/run).
# Every target does its own setup on a fresh Debian machine with Python >= 3.11.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when pyproject.toml changes (or the venv is new).
STAMP := $(VENV)/.installed
EXTRAS := dev,celery,postgres
PYTEST_ARGS ?=
# pytest-xdist processes for make test (0: one process, e.g. to debug with -s/--pdb).
PYTEST_WORKERS ?= 2
BENCH_ARGS ?=
CHAOS_MINUTES ?= 30
CHAOS_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv install servers demo test lint format bench chaos clean

help:
	@echo "make install   create $(VENV) and install pyworkflow[$(EXTRAS)] (editable)"
	@echo "make demo      run examples/demo.py"
	@echo "make test      install, make sure redis-server/postgresql exist, run pytest"
	@echo "               (extra arguments: make test PYTEST_ARGS='-k celery -x';"
	@echo "               PYTEST_WORKERS=0 runs it in one process, default 2)"
	@echo "make lint      ruff check, ruff format --check, mypy --strict, layout rules"
	@echo "make format    ruff check --fix, ruff format"
	@echo "make bench     run the benchmarks (bench/; BENCH_ARGS=--quick for a short run)"
	@echo "make chaos     fault-injection soak (CHAOS_MINUTES=30, CHAOS_ARGS='--seed 7')"
	@echo "make clean     remove the venv, caches and build output"

venv install: $(STAMP)

# Debian's own python3 lacks ensurepip until python3-venv is installed; a failed attempt
# leaves a half-made venv behind, so remove it before retrying or giving up.
$(BIN)/python:
	@if ! $(PYTHON) -m venv $(VENV); then \
		rm -rf $(VENV); \
		if [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
			echo "installing python3-venv with apt-get"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				python3-venv </dev/null; \
			$(PYTHON) -m venv $(VENV); \
		else \
			echo "'$(PYTHON) -m venv' failed: install python3-venv (sudo apt-get install python3-venv)" >&2; \
			exit 1; \
		fi; \
	fi

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

servers:
	scripts/ensure-servers.sh

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# pytest's exit code is make's: 1 for failures, and 5 ("no tests collected") fails too.
test: $(STAMP) servers
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Run every check even when an earlier one fails, so one run reports everything.
lint: $(STAMP)
	@status=0; \
	echo "== ruff check"; $(BIN)/ruff check . || status=1; \
	echo "== ruff format --check"; $(BIN)/ruff format --check . || status=1; \
	echo "== mypy"; $(BIN)/mypy || status=1; \
	echo "== layout"; scripts/check-layout.sh || status=1; \
	exit $$status

format: $(STAMP)
	$(BIN)/ruff check --fix --exit-zero .
	$(BIN)/ruff format .

# Full run ~20 min: writes bench/results/<time>.json, docs/benchmarks.md and docs/img/.
# Faster: make bench BENCH_ARGS=--quick (~3 min, docs untouched); see docs/benchmarks.md.
bench: $(STAMP) servers
	$(BIN)/python -m bench $(BENCH_ARGS)

# Kills workers, Beat, Redis and PostgreSQL at random for CHAOS_MINUTES, then prints a
# summary table; exit 1 if a run was lost or a step recorded twice. The short mode of
# the same scenarios is part of `make test` (tests/chaos).
chaos: $(STAMP) servers
	$(BIN)/python -m tests.chaos.soak --minutes $(CHAOS_MINUTES) $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./.git -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf

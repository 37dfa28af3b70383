# The README's commands. Each target creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench bench-quick soak clean

# pip >= 25.1 reads the [dependency-groups] of pyproject.toml (`pip install --group`).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'

# Stamp files re-run the install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . --group bench
	touch $@

demo: $(VENV)/.installed
	$(BIN)/aioconn demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests $(wildcard benchmarks)

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict

pytest: $(VENV)/.installed-dev
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q

test: lint typecheck pytest

# Benchmarks (issue #5): write docs/benchmarks.md and docs/benchmarks/*.png.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run

bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run --quick

# The reliability suite's soak test, for longer than CI runs it (its default is 10 s).
SOAK_SECONDS ?= 300
soak: $(VENV)/.installed-dev
	AIOCONN_SOAK_SECONDS=$(SOAK_SECONDS) PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q tests/reliability/test_soak.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache

# The README's commands. Each target creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench bench-quick soak explore clean docs docs-serve docs-check

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

$(VENV)/.installed-cli: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	touch $@

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[cli]' --group docs
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . --group bench
	touch $@

demo: $(VENV)/.installed-cli
	$(BIN)/aioconn demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests tools $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests tools $(wildcard benchmarks)

typecheck: $(VENV)/.installed-dev $(VENV)/.installed-docs
	$(BIN)/mypy --strict

pytest: $(VENV)/.installed-dev $(VENV)/.installed-docs
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q

test: lint typecheck pytest

# The documentation site (mkdocs.yml): built strict into site/; a warning fails the build.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

# The site as a person sees it, in Debian's headless chromium, installed here when missing.
# That needs root, so it is a target of its own rather than part of `make test`; .ci/run runs
# both (CI is root).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

docs-check: $(VENV)/.installed-dev $(VENV)/.installed-docs | $(CHROMIUM)
	AIOCONN_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q tests/browser/check_docs_site.py

# Benchmarks (issue #5): write docs/benchmarks.md and docs/benchmarks/*.png.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run

bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run --quick

# The reliability suite's soak test, for longer than CI runs it (its default is 10 s).
SOAK_SECONDS ?= 300
soak: $(VENV)/.installed-dev
	AIOCONN_SOAK_SECONDS=$(SOAK_SECONDS) PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q tests/reliability/test_soak.py

# The pool, alone and over Endpoints, under many explored schedules (tests/test_pool_explore.py,
# tests/test_endpoints_explore.py; CI runs 30 seeds of each).
EXPLORE_SEEDS ?= 2000
explore: $(VENV)/.installed-dev
	$(BIN)/pytest -q --timeout 3600 tests/test_pool_explore.py tests/test_endpoints_explore.py --aioconn-explore-seeds=$(EXPLORE_SEEDS)

clean:
	rm -rf $(VENV) build dist site .mypy_cache .ruff_cache .pytest_cache

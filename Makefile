# emp-tasks: `make demo` runs the offline showcase, `make test` runs every check.
# Both create the virtual environment and install what they need on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps demo test check lint types unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# redis-server is the one system package the tests need (a real broker and result backend).
system-deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server is required for the integration tests (apt-get install redis-server)"; exit 1; fi; }

demo: install
	$(BIN)/emp-tasks demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install
	$(BIN)/mypy

check: lint types

unit: install
	$(BIN)/pytest -q -m "not integration"

integration: install system-deps
	$(BIN)/pytest -q -m integration

test: install system-deps check
	$(BIN)/pytest -q

bench: install system-deps
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/asset_memory.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

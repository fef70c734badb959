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

# System packages the tests need: redis-server (a real broker and result backend), rabbitmq-server
# (the AMQP tests start their own node), and Chromium
# with its driver (the Flower browser test; it skips without them). Each is "command:package";
# only the missing ones are installed, so apt-get runs (and updates its lists) at most once.
SYSTEM_DEPS := redis-server:redis-server /usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server \
	chromium:chromium chromedriver:chromium-driver

system-deps:
	@missing=; for dep in $(SYSTEM_DEPS); do \
	  command -v "$${dep%%:*}" >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "the tests need these system packages: apt-get install$$missing"; \
	    case "$$missing " in *" redis-server "*) exit 1;; esac; fi; fi

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

# Three test processes, one file each at a time (a module's worker and emulators start once): the
# integration tests mostly wait on real processes, so this runs the suite in a third of the time.
test: install system-deps check
	$(BIN)/pytest -q -n 3 --dist loadfile

bench: install system-deps
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/asset_memory.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

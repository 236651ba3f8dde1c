# Shopologic Realtime: `make run` serves the platform, `make test` passes the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PLUGIN := websocket-realtime-engine

.PHONY: install run test lint services bench bench-quick bench-cluster screenshots clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# playwright drives Debian's chromium (scripts/ensure-services.sh installs it): never a browser download
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: set up, activate the plugin (runs its migrations), serve on 127.0.0.1:8080
run: install
	$(BIN)/python bootstrap_plugins.py plugin activate $(PLUGIN)
	$(BIN)/python bootstrap_plugins.py serve --demo

## test: set up, make sure Redis and PostgreSQL answer, lint, type-check, run every test, on
## TEST_WORKERS processes (pytest-xdist; TEST_WORKERS=0 runs them all in this one)
TEST_WORKERS ?= 2
test: install services lint
	$(BIN)/pytest -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## screenshots: the pages (dashboard, debug console, storefront) photographed into docs/screenshots/
screenshots: install services
	$(BIN)/python scripts/screenshots.py

services:
	@bash scripts/ensure-services.sh

## bench: the engine against the raw-aiohttp ceiling (../shared/bench), about 6 minutes
bench: install
	bash scripts/bench.sh

bench-quick: install
	bash scripts/bench.sh --clients 1000 --reps 1 --channels-clients 0

## bench-cluster: two nodes joined by a private redis-server against one embedded node, C = 1000, 3 reps
## (about 1.5 minutes; more: make bench-cluster BENCH_CLUSTER_ARGS='--clients 1000,5000 --reps 5')
bench-cluster: install
	$(BIN)/python scripts/bench_cluster.py $(BENCH_CLUSTER_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

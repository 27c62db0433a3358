# xbot: two commands to start (`make run`, `make test`); see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
DAYS ?= 30
REDIS ?= 0
# `make run REDIS=1`: the main job on the hot path, through this machine's Redis, in a DB and a
# key prefix of its own (the store decides; the run ends with the store-only run's store).
REDIS_RUN_URL ?= redis://127.0.0.1:6379/12
REDIS_RUN_PREFIX ?= xbot-run:
RUN_ENV := $(if $(filter 1,$(REDIS)),REDIS_URL=$(REDIS_RUN_URL) REDIS_PREFIX=$(REDIS_RUN_PREFIX),)

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export UV_PYTHON := $(PYTHON)

.PHONY: help install run test lint typecheck check-defs ui lab chromium prepare bench clean deploy-local

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV)/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-groups
	@touch $@

install: $(VENV)/.installed ## create .venv with uv and install the locked dependencies

$(DAGSTER_HOME)/dagster.yaml: $(VENV)/.installed
	@$(BIN)/python -c "from xbot_assets.config import ensure_dagster_home; ensure_dagster_home()"

prepare: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml ## parse the dbt project (manifest) for Dagster
	$(BIN)/dagster-dbt project prepare-and-package --file xbot_assets/warehouse/project.py >/dev/null

run: prepare ## run the main job on the embedded default (sandbox X, SQLite, DuckDB; DAYS=30; REDIS=1 adds Redis)
	$(BIN)/xbot migrate
	$(RUN_ENV) $(BIN)/xbot run --days $(DAYS)

chromium: ## install Debian's Chromium (and a colour emoji font) for the browser tests when missing
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (browser poster and UI tests)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@# Without a colour emoji font, Chromium draws the generator's emoji as empty boxes in the
	@# console and its screenshots (docs/img).
	@fc-list 2>/dev/null | grep -qi 'color emoji' || { \
	  echo "installing Debian's fonts-noto-color-emoji (emoji in the console's screenshots)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq fonts-noto-color-emoji >/dev/null; }

lint: $(VENV)/.installed ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed ## mypy over the package, the tests, the benchmarks and the scripts
	$(BIN)/mypy

check-defs: prepare ## dg check defs: the code location loads
	$(BIN)/dg check defs

test: prepare chromium lint typecheck check-defs ## every test, lint and type check
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder -q -p no:cacheprovider --durations=15

bench: prepare ## the benchmarks (not part of make test); results in benchmarks/results/
	$(BIN)/python benchmarks/run_all.py

ui: prepare ## the Dagster UI on http://127.0.0.1:3000
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

deploy-local: prepare ## the whole deployment on this machine (daemon, webserver, sandbox, health; ARGS="--speed 144"; ARGS="--celery 2": on 2 Celery workers)
	$(BIN)/python scripts/deploy_local.py $(ARGS)

lab: install ## JupyterLab on http://127.0.0.1:8888 for the analyst notebooks (after make run)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser notebooks/

clean: ## remove local state (.xbot, .dagster_home, dbt target) and stop the warm dbt server
	-@test ! -x $(BIN)/xbot-dbt || $(BIN)/xbot-dbt --xbot-stop-server
	rm -rf .xbot .dagster_home dbt/target dbt/logs

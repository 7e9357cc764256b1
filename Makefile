# tidelake's one task runner. CI runs `make test`, exactly as a person does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TIDELAKE := $(VENV)/bin/tidelake
STAMP := $(VENV)/.installed
# The lock: every package's exact version, within pyproject's ranges. `make lock` refreshes it.
LOCK := requirements.lock
# The Flink venv's own lock (PyFlink's dependencies conflict with ours): `tidelake flink fetch` installs against it.
FLINK_LOCK := tidelake/resources/flink-requirements.lock
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
EXTRAS := dev,bench,testing
# pytest-xdist workers for make test: each has its own local Kafka; one test file runs on one worker.
TEST_WORKERS ?= 2

.PHONY: help install lock upgrade test unit demo up down bench lint clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK) tidelake/resources/kafka-pom.xml tidelake/resources/flink-pom.xml $(FLINK_LOCK) tools/install-system-deps.sh
	./tools/install-system-deps.sh chromium
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(UV) pip install --python $(PY) --quiet --constraint $(LOCK) -e '.[$(EXTRAS)]'
	$(TIDELAKE) broker fetch
	$(TIDELAKE) flink fetch  # PyFlink in a venv of its own + Flink's Kafka connector (--runtime flink)
	touch $(STAMP)

install: $(STAMP) ## Create .venv, install tidelake and its extras at the locked versions, fetch Kafka's jars and Flink

lock: ## Refresh requirements.lock and the Flink venv's lock: the newest versions the ranges allow (then run make test)
	@test -x $(UV) || { $(PYTHON) -m venv $(VENV) && $(PY) -m pip install --quiet uv==$(UV_VERSION); }
	$(UV) pip compile pyproject.toml --extra dev --extra bench --extra testing --universal --python-version 3.11 \
		--upgrade --quiet --output-file $(LOCK)
	$(UV) pip compile tidelake/resources/flink-requirements.in --python-version 3.11 --upgrade --quiet \
		--output-file $(FLINK_LOCK)
	@git --no-pager diff --stat -- $(LOCK) $(FLINK_LOCK) 2>/dev/null || true

upgrade: lock ## Refresh the lock, reinstall from it and run the whole suite
	rm -f $(STAMP)
	$(MAKE) test

test: install ## Run the whole suite (unit + integration + e2e) against a real Kafka it starts itself
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile
	cd examples/testing-with-tidelake && $(abspath $(PY)) -m pytest  # the plugin from outside the suite (own pytest.ini)

unit: install ## Run only the unit tests (no broker)
	$(PY) -m pytest tests/unit

demo: install ## The whole pipeline on a real clickstream, then the answers; it keeps running (make down stops it)
	$(TIDELAKE) demo $(DEMO_ARGS)

up: install ## Start the pipeline in the background: Kafka, stream apps, delivery streams, console (tidelake up)
	$(TIDELAKE) up $(UP_ARGS)

down: ## Stop what make up / make demo started (tidelake down)
	@test -x $(TIDELAKE) || { echo "nothing to stop: tidelake is not installed"; exit 0; }; $(TIDELAKE) down

bench: install ## Run every benchmark (ours beside a baseline) and append the figures to docs/benchmarks.md
	$(PY) -m bench

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean: ## Remove the venv and caches (the lake and the broker's data are kept)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# tidelake's one task runner. CI runs `make test`, exactly as a person does.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TIDELAKE := $(VENV)/bin/tidelake
STAMP := $(VENV)/.installed

.PHONY: help install test unit demo up down bench lint clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml tools/kafka/pom.xml tools/install-system-deps.sh
	./tools/install-system-deps.sh chromium
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(TIDELAKE) broker fetch
	touch $(STAMP)

install: $(STAMP) ## Create .venv, install tidelake with dev and bench extras, fetch Kafka's jars

test: install ## Run the whole suite (unit + integration + e2e) against a real Kafka it starts itself
	$(PY) -m pytest

unit: install ## Run only the unit tests (no broker)
	$(PY) -m pytest tests/unit

demo: install ## The whole pipeline on a real clickstream, then the answers (tidelake demo)
	$(TIDELAKE) demo $(DEMO_ARGS)

up: ## Run the pipeline in Docker (docker compose up)
	docker compose up -d --wait

down: ## Stop the Docker pipeline
	docker compose down

bench: install ## Run every benchmark (ours beside a baseline) and append the figures to docs/benchmarks.md
	$(PY) -m bench

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean: ## Remove the venv and caches (the lake and the broker's data are kept)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

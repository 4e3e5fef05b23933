# seqwatch developer entry points. Every target sets up what it needs itself.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SEQWATCH := $(BIN)/seqwatch
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test test-unit bench measure-recovery soak lint format clean kafka-up kafka-down

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "seqwatch: Python 3.11+ not found"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# devtools/ (generator, bench, local Kafka, harness) is not installed with seqwatch:
	@# the dev virtualenv sees it from this checkout.
	@$(BIN)/python -c 'import site, sys; open(site.getsitepackages()[0] + "/seqwatch-devtools.pth", "w").write(sys.argv[1] + "\n")' "$(CURDIR)"
	@rm -f $(VENV)/.installed-*; touch $@

## The main job: local Kafka, topics, a worker, the bundled samples replayed, alerts printed.
demo: install
	$(SEQWATCH) demo

## Unit and integration tests; the test session starts (and stops) its own Kafka on port 29092.
test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

bench: install
	$(SEQWATCH) bench --json

## Recovery time after kill -9 with PENDING starts held (against the local broker on 9092).
PENDING ?= 10000
measure-recovery: install
	$(SEQWATCH) kafka up
	$(BIN)/python -m tests.integration.recovery_time --pending $(PENDING)

## State, RocksDB and memory over EVENTS records with a short TTL (local broker on 9092).
EVENTS ?= 2000000
soak: install
	$(SEQWATCH) kafka up
	$(BIN)/python -m tests.integration.soak --events $(EVENTS) --ttl 60s

lint: install
	$(BIN)/ruff check app devtools tests topics
	$(BIN)/ruff format --check app devtools tests topics

format: install
	$(BIN)/ruff check --fix app devtools tests topics
	$(BIN)/ruff format app devtools tests topics

kafka-up: install
	$(SEQWATCH) kafka up

kafka-down: install
	$(SEQWATCH) kafka down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info

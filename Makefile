# dispatch -- see README.md.  Every target installs what it needs first.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv services demo test unit lint typecheck audit format graph worker bench up down clean

# The package with its extras and the project's own tools (requirements/dev.txt: pytest, ruff, mypy, ...).
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/dev.txt
	touch $@

venv: $(STAMP)

services:
	bash scripts/ensure-services.sh
	bash scripts/ensure-browser.sh

## the main job end to end: a receiver, a worker, calls GET and POST, a failure, results
demo: venv
	-bash scripts/ensure-services.sh
	$(PY) examples/demo.py

## the whole suite: lint, unit tests, integration tests against real RabbitMQ/Redis/worker/endpoints;
## then the test process's coverage of dispatch/ (no gate; worker processes are not measured). coverage starts
## before pytest, as the pytest plugin (dispatch.testing) imports the package before pytest-cov could start
test: venv services lint
	set -o pipefail; $(PY) -m coverage run -m pytest 2>&1 | tee .pytest-summary.log
	$(PY) -m coverage report
	@tail -n 1 .pytest-summary.log  # pytest's summary line last, after the coverage table

unit: venv
	$(PY) -m pytest tests/unit

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@$(MAKE) --no-print-directory typecheck
	@$(MAKE) --no-print-directory audit

## mypy over dispatch/ ([tool.mypy] in pyproject.toml: the public API strictly)
typecheck: venv
	$(VENV)/bin/mypy

## pip-audit over the requirements as installed; one line saying it is skipped where its database is unreachable
audit: venv
	$(PY) scripts/audit.py

## the package's import graph folder by folder, with each module's length; fails on a cycle or a module over 500 lines
graph: venv
	$(PY) scripts/modgraph.py

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## throughput and latency beside Celery and the raw HTTP clients; writes benchmarks/results/
bench: venv services
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) benchmarks/bench.py

## a worker on the configured broker (see DISPATCH_* in docs/configuration.md)
worker: venv
	$(VENV)/bin/dramatiq dispatch.tasks

## the docker/ stack: RabbitMQ + UI, Redis, worker, gateway, example receiver (needs a Docker engine)
# needs RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS, REDIS_PASSWORD, DISPATCH_GATEWAY_TOKEN or docker/.env
up:
	@command -v docker >/dev/null || { echo "make up needs Docker (docker compose)"; exit 1; }
	docker compose -f docker/compose.yaml up -d --build

down:
	@command -v docker >/dev/null || { echo "make down needs Docker (docker compose)"; exit 1; }
	docker compose -f docker/compose.yaml down

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache .coverage .pytest-summary.log

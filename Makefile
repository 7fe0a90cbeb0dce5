# carprice: the Makefile is the pipeline DAG. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

LISTINGS ?=
RAW := data/raw
SNAPSHOTS := data/snapshots
VALIDATED := data/validated
MODEL := data/model
EVALUATION := reports/evaluation
PACKAGE := data/model/package
E2E := reports/e2e
PARAMS := params.yaml
PORT ?= 8000
VERSION ?=
E2E_LOCAL ?= 0

# Simulator seed data for a fresh checkout (used when data/raw/ holds no listings).
SIM_WEEKS ?= 8
SIM_START ?= 2026-01-05
SIM_SEED ?= 42
SIM_PER_WEEK ?= 5000

PYTEST_ARGS ?=
CANDIDATES ?=  # make tune: sampled settings and CV folds (empty: params.yaml's tune section)
FOLDS ?=

.PHONY: help setup retrain seed-raw ingest validate train tune quality-study evaluate package image e2e promote \
	rollback reproduce serve serve-stop serve-local releases container-setup monitor retrain-if-needed demo-loop \
	loadtest mlflow-ui notebooks simulate test test-fast reliability audit lock lint format bench bench-monitor bench-distributed bench-serving bench-load \
	clean

help: ## list the targets (names in bold on a terminal, unless NO_COLOR is set)
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then bold=$$'\033[1m' plain=$$'\033[0m'; else bold= plain=; fi; \
	grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -v b="$$bold" -v p="$$plain" 'BEGIN{FS=":.*## "}{printf "  %s%-16s%s %s\n", b, $$1, p, $$2}'
	@echo "  variables: LISTINGS=path (CSV/Parquet file or folder), VERSION=n (rollback," \
	  "reproduce), PORT=8000 (serve), E2E_LOCAL=1 (gate 3 on a local process)," \
	  "HOST= USERS= DURATION= (loadtest), PYTEST_ARGS=..."

$(STAMP): requirements.txt pyproject.toml setup.py src/carprice/runtime/_treescore.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $@

setup: $(STAMP) ## create .venv and install the pinned requirements and carprice (editable)

seed-raw: $(STAMP) ## fill an empty data/raw/ with simulated listings (no-op when it has data)
	@if [ -z "$$(find $(RAW) -type f \( -name '*.csv' -o -name '*.parquet' \) -print -quit)" ]; then \
	  echo "data/raw/ holds no listings: seeding it from the market simulator" \
	       "($(SIM_WEEKS) weeks x $(SIM_PER_WEEK) listings from $(SIM_START), seed $(SIM_SEED))"; \
	  $(BIN)/carprice simulate --weeks $(SIM_WEEKS) --start $(SIM_START) --seed $(SIM_SEED) \
	    --listings-per-week $(SIM_PER_WEEK) --out $(RAW); \
	fi

retrain: $(STAMP) ## ingest -> gate 1 -> train -> gate 2 -> package -> gate 3 -> promote
	@if [ -z "$(LISTINGS)" ]; then $(MAKE) --no-print-directory seed-raw; fi
	@BIN=$(BIN) LISTINGS="$(or $(LISTINGS),$(RAW))" PARAMS=$(PARAMS) VALIDATED=$(VALIDATED) \
	  MODEL=$(MODEL) EVALUATION=$(EVALUATION) PACKAGE=$(PACKAGE) E2E=$(E2E) \
	  E2E_LOCAL=$(E2E_LOCAL) scripts/retrain.sh

ingest: $(STAMP) ## snapshot LISTINGS (default data/raw/) into data/snapshots/
	$(BIN)/carprice ingest --listings "$(or $(LISTINGS),$(RAW))"

validate: $(STAMP) ## gate 1 on LISTINGS (a snapshot, file or folder) into data/validated/
	$(BIN)/carprice validate --listings "$(or $(LISTINGS),$(RAW))" --out $(VALIDATED) --params $(PARAMS)

train: $(STAMP) ## train on data/validated/ and register the challenger in MLflow
	$(BIN)/carprice train --data $(VALIDATED) --out $(MODEL) --params $(PARAMS)

tune: $(STAMP) ## grouped-CV search of train.lgb on data/validated/ -> reports/tune/ (CANDIDATES= FOLDS=)
	$(BIN)/carprice tune --data $(VALIDATED) --params $(PARAMS) --out reports/tune \
	  $(if $(CANDIDATES),--candidates $(CANDIDATES)) $(if $(FOLDS),--folds $(FOLDS))

STUDY_LISTINGS ?= ../shared/data/autoscout24-listings.csv
quality-study: $(STAMP) ## model quality study (candidates, intervals, learning curve) -> reports/study/ (STUDY_LISTINGS= JOBS= QUICK=1)
	$(BIN)/carprice study --listings $(STUDY_LISTINGS) --params $(PARAMS) --out reports/study \
	  --jobs $(or $(JOBS),2) $(if $(QUICK),--quick)

evaluate: $(STAMP) ## gate 2 on the trained challenger into reports/evaluation/
	$(BIN)/carprice evaluate --data $(VALIDATED) --model $(MODEL) --out $(EVALUATION) --params $(PARAMS)

package: $(STAMP) ## export the challenger + golden set into data/model/package/
	$(BIN)/carprice package --data $(VALIDATED) --out $(PACKAGE) --params $(PARAMS)

container-setup: ## install/configure podman and cache its Debian base image (when no Docker)
	scripts/container-setup.sh

image: $(STAMP) ## build the service image with the packaged bundle (docker or podman)
	$(BIN)/carprice image --package $(PACKAGE)

e2e: $(STAMP) ## gate 3: the built container vs the offline model (E2E_LOCAL=1: local process)
	$(BIN)/carprice e2e --package $(PACKAGE) --out $(E2E) --params $(PARAMS) \
	  $(if $(filter 1,$(E2E_LOCAL)),--local)

promote: $(STAMP) ## make the gated package the champion: manifest, deploy pointer, reload
	$(BIN)/carprice promote --package $(PACKAGE) --gate1 $(VALIDATED) --gate2 $(EVALUATION) \
	  --gate3 $(E2E) --params $(PARAMS)

rollback: $(STAMP) ## gate 3 on an earlier release, then switch back to it (VERSION=n)
	$(BIN)/carprice rollback --params $(PARAMS) $(if $(VERSION),--version $(VERSION))

reproduce: $(STAMP) ## rebuild release VERSION=n from its snapshot, params and code; compare
	@test -n "$(VERSION)" || { echo "usage: make reproduce VERSION=n"; exit 2; }
	$(BIN)/carprice reproduce $(VERSION)

releases: ## list the release history (CARPRICE_HOME/releases/history.jsonl)
	@cat $${CARPRICE_HOME:-var}/releases/history.jsonl 2>/dev/null || echo "no releases yet"

serve: $(STAMP) ## production: run the champion image (the one gate 3 tested) on 127.0.0.1:PORT
	@$(BIN)/carprice serve --port $(PORT)

serve-stop: $(STAMP) ## stop the production container
	@$(BIN)/carprice serve --stop

serve-local: $(STAMP) ## development: this checkout under gunicorn in the foreground (PORT=8000)
	$(BIN)/carprice serve --local --port $(PORT)

monitor: $(STAMP) ## usage, drift, realised error on sold prices -> reports/monitoring/ (prints the verdict)
	@rc=0; $(BIN)/carprice monitor --params $(PARAMS) || rc=$$?; \
	if [ $$rc -eq 10 ]; then echo "== verdict: retrain recommended (make retrain, or make retrain-if-needed)"; \
	elif [ $$rc -eq 0 ]; then echo "== verdict: quiet, no retrain needed"; \
	else echo "monitor failed (exit $$rc)"; exit $$rc; fi

retrain-if-needed: $(STAMP) ## monitor, then retrain when the verdict says so (the CD trigger)
	@rc=0; $(BIN)/carprice monitor --params $(PARAMS) || rc=$$?; \
	if [ $$rc -eq 10 ]; then echo "== monitor recommends retraining"; $(MAKE) --no-print-directory retrain; \
	elif [ $$rc -eq 0 ]; then echo "== monitor: no retrain needed"; \
	else echo "monitor failed (exit $$rc)"; exit $$rc; fi

demo-loop: $(STAMP) ## simulated weeks end to end: retrain, serve, traffic, drift, monitor, retrain
	$(BIN)/python -m carprice.simulator.demoloop

loadtest: $(STAMP) ## locust against HOST (default: starts the champion), USERS=, DURATION=
	$(BIN)/carprice loadtest --params $(PARAMS) $(if $(HOST),--host $(HOST)) \
	  $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION))

mlflow-ui: $(STAMP) ## browse runs and the registry on http://127.0.0.1:5000
	@home=$$(realpath -m "$${CARPRICE_HOME:-var}"); \
	  root=$$(realpath -m "$${CARPRICE_ARTIFACT_ROOT:-$$home/mlartifacts}"); \
	  $(BIN)/mlflow ui --backend-store-uri "sqlite:///$$home/mlflow.db" \
	    --default-artifact-root "$$root" --host 127.0.0.1

$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

NB_PORT ?= 8888
notebooks: $(DEV_STAMP) ## JupyterLab on 127.0.0.1:NB_PORT from the project root (installs requirements-dev.txt once)
	@echo "JupyterLab: http://127.0.0.1:$(NB_PORT)/lab (its login link with the token follows;" \
	  "open notebooks/ in the file browser; Ctrl-C stops it)"
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(NB_PORT) --no-browser \
	  --ServerApp.root_dir="$(CURDIR)" $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)

simulate: $(STAMP) ## write simulated weeks to data/simulated/ (SIM_WEEKS, SIM_START, SIM_SEED)
	$(BIN)/carprice simulate --weeks $(SIM_WEEKS) --start $(SIM_START) --seed $(SIM_SEED) \
	  --listings-per-week $(SIM_PER_WEEK) --out data/simulated

test: $(STAMP) ## the whole test suite (real listings, every tier)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the quick subset for the edit loop (no slow tests)
	$(BIN)/pytest -m "not slow" -q $(PYTEST_ARGS)

reliability: $(STAMP) ## faults, fuzzing and hostile input against a real gunicorn (~3 min)
	$(BIN)/pytest tests/reliability -q $(PYTEST_ARGS)

audit: $(STAMP) ## known-vulnerability audit of the pinned dependencies (pip-audit)
	$(BIN)/pip-audit --strict --progress-spinner off -r requirements.txt -r serving/requirements.txt

# The image installs serving/requirements.lock only (pip --require-hashes --no-deps): every package
# it needs, each pinned to the version requirements.txt pins where it pins one, with the hashes of
# all its files on PyPI. uv resolves it for every platform at once (--universal).
lock: $(STAMP) ## rewrite the image's hashed lock serving/requirements.lock from serving/requirements.txt (uv)
	$(BIN)/python -m pip install --quiet "$$(grep '^uv==' requirements-dev.txt)"
	$(BIN)/uv pip compile serving/requirements.txt --constraints requirements.txt --universal \
	  --python-version 3.11 --generate-hashes --native-tls --custom-compile-command 'make lock' \
	  --output-file serving/requirements.lock

lint: $(STAMP) ## ruff lint and format check, import rules between districts (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP) ## apply ruff formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## benchmarks: ingest+validate, simulator and training on 1,000,000 rows
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_simulate.py
	$(BIN)/python bench/bench_train.py
	$(MAKE) bench-distributed
	$(MAKE) bench-monitor

# make bench-monitor BENCH_MONITOR_ARGS="--engine both" (see bench/bench_monitor.py -h)
BENCH_MONITOR_ARGS ?=
bench-monitor: $(STAMP) ## the monitor's peak memory on 500,000 and 5,000,000 logged estimates (SQLite)
	$(BIN)/python bench/bench_monitor.py $(BENCH_MONITOR_ARGS)

# make bench-distributed BENCH_DISTRIBUTED_ARGS="--rows 1000000 --rounds 200" (bench/bench_distributed.py -h)
BENCH_DISTRIBUTED_ARGS ?= --rounds 200
bench-distributed: $(STAMP) ## peak memory per process of ingest, gate 1, train and gate 2 on 1,000,000 rows: Dask vs one process
	$(BIN)/python bench/bench_distributed.py $(BENCH_DISTRIBUTED_ARGS)

bench-serving: $(STAMP) ## service throughput and latency vs a bare handler (needs wrk)
	@command -v wrk >/dev/null || { echo "bench-serving needs wrk: apt-get install -y wrk"; exit 2; }
	$(BIN)/python bench/bench_serving.py

# make bench-load BENCH_LOAD_ARGS="--rounds 5 --contenders gevent,sync" (bench/bench_load.py -h)
bench-load: $(STAMP) ## the load test's p50/p95/p99 per request: gevent vs sync workers, alternating
	$(BIN)/python bench/bench_load.py $(BENCH_LOAD_ARGS)

clean: ## remove derived data and reports (keeps data/raw/, .venv and CARPRICE_HOME)
	rm -rf $(VALIDATED) $(MODEL) reports data/simulated
	chmod -R u+w $(SNAPSHOTS) 2>/dev/null || true
	rm -rf $(SNAPSHOTS)

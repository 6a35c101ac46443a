# civio — the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LOCK := requirements/dev.lock
BENCH_LOCK := requirements/bench.lock

.PHONY: help run test lint typecheck audit lock fmt bench bench-quick bench-inbox migrate clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Installs exactly what the lock pins (hash-checked), then civio itself without resolving
# anything; `pip check` fails when pyproject.toml names a dependency the lock lacks.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

# `make lock` keeps the versions already pinned and adds what pyproject.toml newly names;
# `make lock UPGRADE=1` moves every pin to the newest release. Needs PyPI.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --quiet $(if $(UPGRADE),--upgrade)

lock: ## regenerate requirements/*.lock from pyproject.toml (UPGRADE=1 to move every pin)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/pip install -q uv
	$(UV_COMPILE) --extra dev -o $(LOCK)
	$(UV_COMPILE) --extra dev --extra bench -o $(BENCH_LOCK)

HOST ?= 127.0.0.1
PORT ?= 8000

run: $(STAMP) ## start the whole platform on the embedded default (HOST:PORT, 127.0.0.1:8000)
	$(BIN)/civio serve --host $(HOST) --port $(PORT)

test: $(STAMP) lint typecheck audit ## ruff, mypy, pip-audit and the whole suite with coverage
	rm -f .coverage .coverage.*
	$(BIN)/pytest -n 2 --dist loadgroup -q --cov --cov-report=term

audit: $(STAMP) ## known vulnerabilities in the locked dependencies (PyPI's advisory data)
	$(BIN)/pip-audit --disable-pip --require-hashes --progress-spinner off -r $(LOCK)

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict on civio/
	$(BIN)/mypy

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml $(BENCH_LOCK)
	$(BIN)/pip install -q --require-hashes -r $(BENCH_LOCK)
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) ## every figure vs its limit: latest.json, docs/performance.md table and .png (long)
	$(BIN)/python bench/run.py

bench-quick: $(BENCH_STAMP) ## the same with small sizes: a smoke run (~3 min), not reference figures
	$(BIN)/python bench/run.py --quick

bench-inbox: $(STAMP) ## inbox section alone, with plans (bench/results/inbox.json and .md; ~8 min)
	$(BIN)/python bench/inbox.py

migrate: $(STAMP) ## apply migrations to CIVIO_DATABASE_URL or the embedded cluster
	$(BIN)/civio db upgrade

clean: ## remove the venv and the embedded data dir
	rm -rf $(VENV) .civio .coverage .coverage.*

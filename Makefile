# civio — the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test lint typecheck fmt bench bench-quick bench-inbox migrate clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

HOST ?= 127.0.0.1
PORT ?= 8000

run: $(STAMP) ## start the whole platform on the embedded default (HOST:PORT, 127.0.0.1:8000)
	$(BIN)/civio serve --host $(HOST) --port $(PORT)

test: $(STAMP) lint typecheck ## ruff, mypy and the whole test suite
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict on civio/
	$(BIN)/mypy

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[dev,bench]'
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
	rm -rf $(VENV) .civio

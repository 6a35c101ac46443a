# civio — the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help run test lint typecheck fmt bench bench-inbox migrate clean

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

bench: $(STAMP) ## accept rate and pipeline latency (bench/results/latest.json; ~1.5 min)
	$(BIN)/python bench/accept.py

bench-inbox: $(STAMP) ## inbox and search latency, 10k messages among 1M (bench/results/inbox.json; ~8 min)
	$(BIN)/python bench/inbox.py

migrate: $(STAMP) ## apply migrations to CIVIO_DATABASE_URL or the embedded cluster
	$(BIN)/civio db upgrade

clean: ## remove the venv and the embedded data dir
	rm -rf $(VENV) .civio

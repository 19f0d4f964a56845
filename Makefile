# venue-checkin: `make run` and `make test` each work as the first command on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck system-deps bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian packages the posters (CJK font) and browser tests (chromium) need; installed only when absent.
system-deps:
	@bash scripts/system-deps.sh

run: $(STAMP) system-deps
	$(BIN)/checkin up

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check checkin venues tracing loadtest tests
	$(BIN)/ruff format --check checkin venues tracing loadtest tests

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/checkin loadtest bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

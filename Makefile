# venue-checkin: `make run` and `make test` each work as the first command on a fresh clone.
# Installs come from uv.lock (exact versions and hashes) through uv; uv itself is bootstrapped
# with pip into .uv/ when it is not on PATH. `make lock` re-resolves after a pyproject.toml change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2>/dev/null || echo .uv/bin/uv)

# The interpreter is the machine's (pinned by .python-version); uv never downloads one.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck system-deps bench clean lock

.uv/bin/uv:
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --python $(PYTHON) --quiet
	@touch $(STAMP)

lock: | $(UV)
	$(UV) lock --python $(PYTHON)

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

# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv ignores pip's configuration: give it the same find-links pip uses (the CPU torch wheel), only where it exists.
FIND_LINKS := $(foreach d,$(wildcard /opt/wheels),--find-links $(d))
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: venv run test lint typecheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --no-compile uv
	$(BIN)/uv pip install --python $(BIN)/python $(FIND_LINKS) "torch==2.13.0" -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/quanttaas demo --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check optimizer mcp_server assistant ui evals tests
	$(BIN)/ruff format --check optimizer mcp_server assistant ui evals tests

typecheck: $(STAMP)
	$(BIN)/mypy

# tests share one zoo cache inside the checkout (built on first use, ignored by git)
test: $(STAMP) lint typecheck
	QUANTTAAS_HOME=$(CURDIR)/.quanttaas $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m evals.bench_quantize
	$(BIN)/python -m evals.bench_sweep

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

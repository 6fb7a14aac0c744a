# Two commands: `make demo` and `make test`. Both install what they need themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo
DEMO_CUSTOMERS ?= 5000
DEMO_MONTHS ?= 24

.PHONY: demo test lint typecheck pytest install install-test browser uv clean audit

uv:
	@$(UV) --version >/dev/null 2>&1 || { \
	  echo "installing uv from PyPI"; \
	  $(PYTHON) -m pip install --quiet --user uv 2>/dev/null \
	    || $(PYTHON) -m pip install --quiet --user --break-system-packages uv \
	    || $(PYTHON) -m pip install --quiet uv; }

# demo: the default install; test: plus the optional Spark extra, so CI runs the Spark tests too
$(VENV)/.synced: uv.lock pyproject.toml | uv
	$(UV) sync --frozen --inexact --python 3.11
	@touch $@

$(VENV)/.synced-test: uv.lock pyproject.toml | uv
	$(UV) sync --frozen --extra spark --python 3.11
	@touch $@ $(VENV)/.synced

install: $(VENV)/.synced

# Debian's Chromium for the browser tests (Playwright cannot download its own browser here)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

install-test: $(VENV)/.synced-test

demo: install
	$(BIN)/churn generate --customers $(DEMO_CUSTOMERS) --months $(DEMO_MONTHS) --seed 42 --out $(DEMO_DATA)
	$(BIN)/churn validate --data $(DEMO_DATA)
	$(BIN)/churn summary --data $(DEMO_DATA)
	$(BIN)/churn features --data $(DEMO_DATA) --monthly --horizon 90d
	$(BIN)/churn snapshot --data $(DEMO_DATA)
	$(BIN)/churn train --data $(DEMO_DATA) --features data/features/labeled.parquet
	$(BIN)/churn score-all
	$(BIN)/churn users seed-demo
	$(BIN)/churn serve --free-port

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy

pytest: install-test browser
	$(BIN)/pytest -n 2 --dist loadgroup -q

test: lint typecheck pytest

# Known-vulnerable pins in uv.lock (all extras), by pip-audit against PyPI's vulnerability data
# (AUDIT_SERVICE=osv for OSV). --strict: a pin the database cannot look up fails the audit
# instead of being skipped, so an unreachable or incomplete database never reads as a pass.
# Not part of `make test`: it needs the network (see docs/security.md).
AUDIT_SERVICE ?= pypi
audit: uv
	@reqs=$$(mktemp); trap 'rm -f "$$reqs"' EXIT; \
	$(UV) export --frozen --format requirements-txt --no-hashes --no-emit-project --all-extras \
	  --quiet > "$$reqs"; \
	echo "auditing $$(grep -c '==' "$$reqs") pinned packages against $(AUDIT_SERVICE)"; \
	$(UV) tool run --from pip-audit pip-audit --strict --disable-pip --no-deps \
	  --progress-spinner off --vulnerability-service $(AUDIT_SERVICE) -r "$$reqs" \
	  || { echo "dependency audit FAILED: a pin is known to be vulnerable, or the $(AUDIT_SERVICE)" \
	       "vulnerability database could not be reached or could not look a pin up (see above)." \
	       "Nothing was audited as safe."; exit 1; }

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

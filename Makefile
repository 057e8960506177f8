# Everything a fresh machine needs: `make demo` and `make test` create .venv and install what is missing.
# `make demo` installs the package only; `make test` adds the test extras (pytest, Playwright, ...).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP      := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-extras-stamp

.PHONY: demo test bench loadtest screenshots system-packages clean

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing sfcti and its dependencies into $(VENV)..."
	@$(PIP) --upgrade pip
	@$(PIP) -e .
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	@echo "Installing the test extras into $(VENV)..."
	@$(PIP) -e '.[test]'
	@touch $(TEST_STAMP)

# Debian packages the tests run for real: Chromium (browser tests), Kamailio with its Python
# module and baresip (the SIP end-to-end tests), curl (the HTTP lookup recipes), PostgreSQL (the
# shared-store tests). Installed only when missing (needs root for apt-get).
SYSTEM_PACKAGES := chromium kamailio kamailio-python3-modules baresip curl postgresql

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

demo: $(STAMP)
	$(VENV)/bin/sfcti demo

test: $(TEST_STAMP) system-packages
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP) system-packages
	$(PY) bench/resolve.py
	$(PY) bench/index.py --write-docs
	$(PY) bench/activity.py --write-docs
	$(PY) bench/hooks.py
	$(PY) bench/http_lookup.py
	$(PY) bench/kamailio.py
	$(PY) bench/nodes.py --write-docs

# 4 host processes, 200 calls/s for 60 s with Salesforce answering, then hanging (loopback only);
# fails when a promise is broken; the figures go into docs/benchmarks.md and docs/reliability.md
loadtest: $(STAMP)
	timeout 900 $(PY) bench/loadtest.py --write-docs

# Japanese text in screenshots needs a CJK font; the screenshots are taken with Playwright.
screenshots: $(TEST_STAMP) system-packages
	@dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-ipafont-gothic; }
	$(PY) -m admin.screenshots docs/screenshots

clean:
	rm -rf $(VENV) build *.egg-info

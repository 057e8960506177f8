# Everything a fresh machine needs: `make demo` and `make test` create .venv and install what is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench screenshots chromium clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Browser tests drive Debian's Chromium; install it only when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo: $(STAMP)
	$(VENV)/bin/sfcti demo

test: $(STAMP) chromium
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/resolve.py
	$(PY) bench/hooks.py

# Japanese text in screenshots needs a CJK font.
screenshots: $(STAMP) chromium
	@dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-ipafont-gothic; }
	$(PY) -m admin.screenshots docs/screenshots

clean:
	rm -rf $(VENV) build *.egg-info

# The two ways in: `make run` (the service on the embedded default) and `make test` (the whole suite).
# Both set up .venv themselves; `make test` also installs what the end-to-end tests need
# (the npm packages of the Wechaty puppet service, Debian's Chromium).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := tests/wechaty/node_modules/.installed-stamp
CONFIG ?= config.example.toml

.PHONY: run test lint unit node chromium bench clean wheelhouse offline-install

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/villagewatch run --config $(CONFIG)

$(NODE_STAMP): tests/wechaty/package.json
	cd tests/wechaty && npm install --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

node: $(NODE_STAMP)

# Chromium for the browser tests, and a Chinese font: without one every Chinese character renders as a box.
chromium:
	@{ command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; } || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q -m "not wechaty and not browser"

test: $(STAMP) node chromium lint
	$(BIN)/pytest -q

# Benchmarks are never part of `make test`; figures go to BENCHMARKS.md. The dashboard's needs a generated
# city first: see BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_classify.py
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_tickets.py

# Offline installation bundle for an intranet machine without internet. On a connected machine with the
# same OS and Python version as the target, `make wheelhouse` builds wheels of villagewatch and every
# dependency into $(BUNDLE)/wheels, adds what a county edits (rules/, example config and roster, READMEs)
# and packs $(BUNDLE).tar.gz. On the intranet: unpack it, cd into it, and run `make offline-install` (or
# the one line it runs: python3 -m venv .venv && .venv/bin/pip install --no-index --find-links wheels villagewatch).
BUNDLE ?= dist/villagewatch-offline
WHEELS ?= wheels

wheelhouse: $(STAMP)
	rm -rf $(BUNDLE) $(BUNDLE).tar.gz
	mkdir -p $(BUNDLE)/wheels
	$(BIN)/python -m pip wheel --quiet --wheel-dir $(BUNDLE)/wheels .
	rm -rf build  # setuptools' build folder, left in the checkout by the project's own wheel
	$(BIN)/python -m pip download --quiet --only-binary=:all: --dest $(BUNDLE)/wheels pip
	cp -r rules config.example.toml roster.example.csv README.md README.zh-CN.md $(BUNDLE)/
	sed -n '/^offline-install:/,/^$$/p' Makefile | sed '1i PYTHON ?= python3\nVENV := .venv\nBIN := $$(VENV)/bin\nWHEELS ?= wheels\n' > $(BUNDLE)/Makefile
	tar -czf $(BUNDLE).tar.gz -C $(dir $(BUNDLE)) $(notdir $(BUNDLE))
	@echo "bundle: $(BUNDLE).tar.gz ($$(ls $(BUNDLE)/wheels | wc -l) wheels)"

offline-install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-index --find-links $(WHEELS) --upgrade pip
	$(BIN)/python -m pip install --no-index --find-links $(WHEELS) villagewatch
	@echo "installed: $(BIN)/villagewatch (copy config.example.toml to config.toml, then $(BIN)/villagewatch run)"

clean:
	rm -rf $(VENV) tests/wechaty/node_modules .mypy_cache .ruff_cache .pytest_cache

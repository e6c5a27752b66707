# Two commands for a fresh machine (Debian 12, Python 3.11):
#   make run    install everything, load the demo city, serve it (SQLite, in-process jobs)
#   make test   install everything, make sure PostgreSQL is up, run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
IVR := $(VENV)/bin/ivr
STAMP := $(VENV)/.installed

.PHONY: run test install system-packages services lint bench web-assets test-packages

run: install
	$(IVR) db upgrade
	$(IVR) prompts build
	$(IVR) demo
	$(IVR) serve

test: install test-packages services
	$(VENV)/bin/ruff check ivr web tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

install: system-packages $(STAMP) web-assets

web-assets:
	@bash scripts/web-assets.sh

system-packages:
	@bash scripts/system-packages.sh

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

services:
	@bash scripts/services.sh

test-packages:
	@bash scripts/system-packages.sh --test

bench: install services
	$(PY) benchmarks/bench_fastagi.py

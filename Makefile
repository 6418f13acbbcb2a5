# Crewline developer entry points. `make help` lists them; docs/operations.md explains them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
# readers: pyscard for the PC/SC tests (compiled against libpcsclite-dev, see os-packages-rfid.txt)
EXTRAS ?= dev,readers
VAR ?= var
HOST ?= 127.0.0.1
PORT ?= 8080
# simulated handsets (`crewline simulate`) working their crews' jobs in the demo; 0 for none
SIMULATE ?= 4
PBF ?= $(VAR)/data/Helsinki.osm.pbf
PYTEST_ARGS ?=

CREWLINE := $(VENV)/bin/crewline
# The stack commands through their own module: `make stop` works even when server.cli is broken.
STACK := $(VENV)/bin/python -m server.devstack.cli
# db upgrade and demo load get the stack's settings explicitly, so VAR=elsewhere works too.
WITH_STACK_ENV := set -a && . $(VAR)/stack.env && set +a &&
comma := ,
STAMP := $(VENV)/.crewline-installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: help venv deps demo stop status test lint

help:
	@echo "make demo    install what is missing, start PostgreSQL, Mosquitto, server, worker, MQTT"
	@echo "             bridge and SIMULATE=$(SIMULATE) simulated handsets"
	@echo "             under ./$(VAR), load the Helsinki demo; prints URL and logins (PORT=$(PORT))"
	@echo "make stop    stop everything make demo started (data is kept in ./$(VAR))"
	@echo "make status  what runs, on which ports, where it logs"
	@echo "make test    install what the tests need and run the whole suite (PYTEST_ARGS=...)"
	@echo "make lint    import contracts (lint-imports) and ruff"
	@echo "make deps    OS packages only (scripts/install-os-deps.sh)"
	@echo "make venv    $(VENV) with Crewline installed editable, extras [$(EXTRAS)]"

# Reinstalled only when pyproject.toml changes (or EXTRAS does): the stamp records the install.
venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "Crewline needs Python >= 3.11; $(PYTHON) is $$($(PYTHON) -V 2>&1)." \
	       "Run e.g. make PYTHON=python3.11 ..." >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	rm -f $(VENV)/.crewline-installed-*
	touch $@

deps:
	scripts/install-os-deps.sh

demo: deps venv
	scripts/fetch-demo-data.sh $(dir $(PBF))
	$(STACK) up --var-dir $(VAR)
	$(WITH_STACK_ENV) $(CREWLINE) db upgrade
	@mkdir -p $(VAR)/log
	@# kept (unwrapped) so the logins can be shown again at the very end
	$(WITH_STACK_ENV) COLUMNS=1000 $(CREWLINE) demo load --pbf $(PBF) 2>&1 \
	  | tee $(VAR)/log/demo-load.out
	$(STACK) up --var-dir $(VAR) --app --host $(HOST) --port $(PORT) --simulate $(SIMULATE)
	@echo
	@echo "Crewline demo is running:  http://$(HOST):$(PORT)"
	@grep -i 'login' $(VAR)/log/demo-load.out || echo "Demo logins: see $(VAR)/log/demo-load.out"
	@echo "Logs: $(VAR)/log/server.log, $(VAR)/log/worker.log.  Stop with: make stop"

stop:
	@if [ -x $(VENV)/bin/python ]; then $(STACK) down --var-dir $(VAR); \
	 else echo "nothing to stop: no $(VENV)"; fi

status:
	@$(STACK) status --var-dir $(VAR)

test: deps venv
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

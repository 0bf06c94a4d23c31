# opsgate: `make demo` runs the demo gate, `make test` runs the tests. Both set themselves up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FAULT  ?=
ARGS   ?=

.PHONY: demo test lint bench services clean

demo: $(STAMP)
	$(BIN)/opsgate-demo gate $(foreach f,$(FAULT),--fault $(f)) $(ARGS)

test: $(STAMP) services
	$(BIN)/python -m pytest tests $(ARGS)

bench: $(STAMP) services
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests checks benchmarks

services:
	@scripts/ensure-services

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .opsgate-demo build src/*.egg-info

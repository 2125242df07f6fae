# naap: `make leaderboard` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATA ?= data/naap440

.PHONY: install test leaderboard dataset bench system-deps

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

test: $(INSTALLED)
	$(BIN)/python -m pytest

# Debian packages the tests use where present: headless Chromium for the web page,
# real Fashion-MNIST images for the end-to-end run.
system-deps:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dataset-fashion-mnist

# Images/s of one architecture's training: naap's device-resident loop against a plain DataLoader loop.
.PHONY: bench-training
bench-training: $(INSTALLED)
	$(BIN)/python benchmarks/bench_training.py

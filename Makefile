# naap: `make leaderboard` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATA ?= data/naap440

.PHONY: install test leaderboard dataset system-deps

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

# Rebuild a benchmark from its recipe under torchrun, resumable (run it again to go on): one
# process per local GPU; without a GPU one single-threaded process per core, which first
# times the run and stops if it is estimated above MAX_CPU_HOURS (CONFIRM=1 lifts the limit).
RECIPE ?= recipes/naap440.yaml
OUT ?= runs/$(basename $(notdir $(RECIPE)))
GPUS = $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
NPROC ?= $(if $(filter 0,$(GPUS)),$(shell nproc),$(GPUS))
MAX_CPU_HOURS ?= $(if $(CONFIRM),inf,1)
dataset: $(INSTALLED)
	@if [ "$(GPUS)" = 0 ]; then echo "no GPU: $(NPROC) CPU process(es); a run estimated above $(MAX_CPU_HOURS) h stops (CONFIRM=1 lifts it)"; fi
	$(BIN)/torchrun --standalone --nproc-per-node=$(NPROC) -m naap dataset $(RECIPE) --out $(OUT) \
		$(if $(filter 0,$(GPUS)),--device cpu --max-hours $(MAX_CPU_HOURS))

# Rank the accuracy predictors on $(DATA): leaderboard/ (tables, README.md, index.html, figures).
# Cross-validation first, the paper's protocol, the two extrapolation protocols; budgets 0,3,6,9.
# $(DATA)/proxies.parquet (`naap proxies $(DATA) --data-free`) is joined when present.
leaderboard: $(INSTALLED)
	$(BIN)/naap leaderboard $(DATA) --out leaderboard

# The paper protocol run plainly (one fit after another, no reuse) against the optimised path.
.PHONY: bench-leaderboard
bench-leaderboard: $(INSTALLED)
	$(BIN)/python benchmarks/bench_leaderboard.py $(DATA)

# Every benchmark: each reports a ratio against a plain baseline measured in the same run.
.PHONY: bench
bench: bench-training bench-leaderboard

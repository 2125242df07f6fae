# naap: `make leaderboard` (the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DATA ?= data/naap440

.PHONY: install test leaderboard dataset merge system-deps

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[all,dev]'
	touch $@

test: $(INSTALLED)
	$(BIN)/python -m pytest

# Debian packages the tests use where present: headless Chromium for the web page,
# real Fashion-MNIST images for the end-to-end run.
system-deps:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium dataset-fashion-mnist

# The kernels of every x86-64 CPU with AVX2 and FMA (Intel since Haswell, AMD since Zen), taken on
# any such CPU whatever it has beyond them, by capping each library's run-time dispatch (the
# variables are listed in naap/machine.py and recorded in every provenance; numpy >= 2.4 names its
# AVX-512 targets X86_V4, older ones AVX512F...). `make leaderboard` ranks under them, so that
# boards made on two such machines with the same library versions are bit-identical;
# `make test-avx2` runs the suite under them (docs/exactness.md).
AVX2_KERNELS := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
HAS_AVX2 := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo && echo yes)
.PHONY: test-avx2
test-avx2: $(INSTALLED)
	@test -n "$(HAS_AVX2)" || { echo "make test-avx2: this CPU has no AVX2 and FMA"; exit 2; }
	$(AVX2_KERNELS) $(BIN)/python -m pytest

# Images/s of one architecture's training: naap's device-resident loop against a plain DataLoader loop.
.PHONY: bench-training
bench-training: $(INSTALLED)
	$(BIN)/python benchmarks/bench_training.py

# Rebuild a benchmark from its recipe into $(OUT), resumable (run it again to go on). Without a GPU,
# one process trains one single-threaded network per core at once, after timing the run: it
# stops if estimated above MAX_CPU_HOURS (CONFIRM=1 lifts the limit). With GPUs, torchrun starts
# one process per GPU (NPROC). The numbers do not depend on NPROC. Several nodes, job arrays
# (`make merge`), resuming: docs/regenerating.md.
RECIPE ?= recipes/naap440.yaml
OUT ?= runs/$(basename $(notdir $(RECIPE)))
GPUS = $(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU')
NPROC ?= $(if $(filter 0,$(GPUS)),1,$(GPUS))
MAX_CPU_HOURS ?= $(if $(CONFIRM),inf,1)
LAUNCH = $(if $(filter 1,$(NPROC)),$(BIN)/naap,$(BIN)/torchrun --standalone --nproc-per-node=$(NPROC) -m naap)
dataset: $(INSTALLED)
	@if [ "$(GPUS)" = 0 ]; then echo "no GPU: one training per CPU core at once; a run estimated above $(MAX_CPU_HOURS) h stops (CONFIRM=1 lifts it)"; fi
	$(LAUNCH) dataset $(RECIPE) --out $(OUT) $(if $(filter 0,$(GPUS)),--device cpu --max-hours $(MAX_CPU_HOURS))

# Merge the parts that `naap dataset --shard I/N` runs (job arrays) wrote into $(OUT) once all are in.
merge: $(INSTALLED)
	$(BIN)/naap merge $(OUT)

# With a GPU, in minutes: versions and settings; device images == CPU images; naap == the paper's loop
# on CUDA; the smoke recipe as eager x1, eager x4, cohort K=4 and K=1, cohort-graphs, compared bit for
# bit, with steps/s per network and per GPU; kernels and host launches per network-step; the projected
# NAAP-440 hours. Exit 1 on any difference; without a GPU it says so in one line (exit 2).
.PHONY: gpu-check
gpu-check: $(INSTALLED)
	$(BIN)/python benchmarks/gpu_check.py

# Rank the accuracy predictors on $(DATA): leaderboard/ (tables, README.md, index.html, figures).
# Cross-validation first, the paper's protocol, the two extrapolation protocols; budgets 0,3,6,9.
# $(DATA)/proxies.parquet (`naap proxies $(DATA) --data-free`) is joined when present. On an x86-64
# CPU with AVX2, under AVX2_KERNELS (above): the same board, bit for bit, on every such machine.
leaderboard: $(INSTALLED)
	$(if $(HAS_AVX2),$(AVX2_KERNELS)) $(BIN)/naap leaderboard $(DATA) --out leaderboard

# The paper protocol run plainly (one fit after another, no reuse) against the optimised path.
.PHONY: bench-leaderboard
bench-leaderboard: $(INSTALLED)
	$(BIN)/python benchmarks/bench_leaderboard.py $(DATA)

# Querying all 440 architectures at one epoch in one call, against a loop of single queries.
.PHONY: bench-query
bench-query: $(INSTALLED)
	$(BIN)/python benchmarks/bench_query.py

# Per network-step, eager against cohorts of K = 1, 4, 32 (any machine): kernel-launching ops, host
# syncs inside a step (must be 0), device-to-host reads per epoch (must be 1); and the cohort-vs-eager
# speed per core, measured in the same run, numbers checked bit-identical. Exit 1 on a failed invariant.
.PHONY: bench-launches
bench-launches: $(INSTALLED)
	$(BIN)/python benchmarks/bench_launches.py

# Every benchmark: each reports a ratio against a plain baseline measured in the same run.
.PHONY: bench
bench: bench-training bench-leaderboard bench-query bench-launches

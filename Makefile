# nar: two commands on a fresh machine with python3 and make: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench-data bench-quick bench-equal-budget bench-full bench-speed bench-scale report clean

install: $(STAMP)

# Reinstall only when the package metadata changes (editable install: code edits need nothing).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: install
	$(PY) -m nar.demo

test: install lint
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# Style: pyflakes, pycodestyle and import order ([tool.ruff] in pyproject.toml).
lint: install
	$(PY) -m ruff check nar tests tools benchmarks

# Data-generation throughput vs dm-clrs's samplers (JSON to results/, table on stdout).
bench-data: install
	$(PY) -m nar.bench.data --out results/bench_data.json

# Accuracy: every algorithm x every processor on a smoke-level budget (< 60 min on 2 CPU cores), 1 seed.
# Result files land in results/quick/ (one JSON per cell); a finished cell is not recomputed.
JOBS ?= 2
bench-quick: install
	$(PY) -m nar.cli bench run quick --jobs $(JOBS)

# The CLRS protocol (10,000 steps, batch 32, sizes 4..16, best validation, 3 seeds) for a chosen set, e.g.
# `make bench-full ALGOS=bfs,bellman_ford PROCESSORS=mpnn,triplet_gmpnn SEEDS=1,2,3`. Resumable: rerun the same
# command after a kill; finished cells are skipped and a killed one resumes from its last checkpoint.
# STEPS=N trains another budget (write it elsewhere: RESULTS=results/full_N).
ALGOS ?= bfs,bellman_ford
PROCESSORS ?= mpnn,triplet_gmpnn
SEEDS ?= 1,2,3
FULL_JOBS ?= 1
bench-full: install
	$(PY) -m nar.cli bench run full --algorithms $(ALGOS) --processors $(PROCESSORS) \
		--seeds $(SEEDS) --jobs $(FULL_JOBS) $(if $(STEPS),--steps $(STEPS)) $(if $(RESULTS),--results $(RESULTS))

# A training option against the same cells without it, at equal budget (nar/configs/bench/equal_budget.toml):
# Hint-ReLIC and Grokfast (EMA) on DFS and the four sorts, MPNN, 3 seeds. On 2 CPU cores (2026-12-08): 27 min
# without an option (compile cache warm for some cells), about an hour with Hint-ReLIC (a step runs the model twice).
EQUAL_BUDGET = $(PY) -m nar.cli bench run equal_budget --jobs $(JOBS) --compile-cache runs/compile_cache
bench-equal-budget: install
	$(EQUAL_BUDGET) --results results/equal_budget_off
	$(EQUAL_BUDGET) --set train.causal_reg=hint_relic --results results/equal_budget_relic
	$(EQUAL_BUDGET) --set train.grokfast=ema --results results/equal_budget_grokfast

# Speed: data generation, train steps/s, eval graphs/s, FLOPs, compile time and peak memory per processor at
# n = 16 ... 1,024 (results/bench_speed/). DMCLRS_PYTHON=<a throwaway venv's python with dm-clrs> adds dm-clrs.
bench-speed: install bench-data
	$(PY) -m nar.cli bench suite-speed --out results/bench_speed $(if $(DMCLRS_PYTHON),--dmclrs-python $(DMCLRS_PYTHON))

# Scaling: train steps/s and eval graphs/s vs simulated CPU devices (1, 2, 4), and BFS / Bellman-Ford evaluation
# time and peak memory vs graph size on sparse ER graphs up to n = 65,536 (results/bench_scale/<platform>.json).
bench-scale: install
	$(PY) -m nar.cli bench scale

# Tables (docs/results.md), plots (docs/plots/*.png) and the README's results section, from results/ alone.
report: install
	$(PY) -m nar.bench.report --results results --docs docs --readme README.md

clean:
	rm -rf $(VENV) cache bench_out .pytest_cache .hypothesis

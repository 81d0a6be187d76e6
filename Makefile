# nar: two commands on a fresh machine with python3 and make: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench-data clean

install: $(STAMP)

# Reinstall only when the package metadata changes (editable install: code edits need nothing).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: install
	$(PY) -m nar.demo

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

# Data-generation throughput vs dm-clrs's samplers (JSON to results/, table on stdout).
bench-data: install
	$(PY) -m nar.bench.data --out results/bench_data.json

clean:
	rm -rf $(VENV) cache bench_out .pytest_cache .hypothesis

# Convenience targets; each mirrors a command documented in README.md.
PYTHON ?= python

.PHONY: install test verify verify-full derivations derivations-check figures figures-small bench lint

install:
	$(PYTHON) -m pip install -e ".[dev]"

test:
	$(PYTHON) -m pytest

verify:
	$(PYTHON) -m blindspot.verify

verify-full:
	$(PYTHON) -m blindspot.verify --full

derivations:
	$(PYTHON) derivations/run_all.py

derivations-check:
	$(PYTHON) derivations/run_all.py --check

figures:
	$(PYTHON) experiments/run_all.py

figures-small:
	$(PYTHON) experiments/run_all.py --small

bench:
	$(PYTHON) experiments/bench_analysis.py

lint:
	ruff check . && ruff format --check .

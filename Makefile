# Convenience targets; each mirrors a command documented in README.md (tests/test_readme.py checks it).
PYTHON ?= python

.PHONY: install install-test test verify verify-full probe-example probe-help derivations derivations-check figures figures-small bench bench-smoke device-check device-check-smoke lint

install:
	$(PYTHON) -m pip install -e ".[dev]"

install-test:
	$(PYTHON) -m pip install -e ".[test]"

test:
	$(PYTHON) -m pytest

verify:
	$(PYTHON) -m blindspot.verify

verify-full:
	$(PYTHON) -m blindspot.verify --full

probe-example:
	$(PYTHON) -m blindspot.probe --n 32 --d 16 --mlp 32 --residual --data markov --rho 0.9 --json report.json

probe-help:
	$(PYTHON) -m blindspot.probe --help

derivations:
	$(PYTHON) derivations/run_all.py

derivations-check:
	$(PYTHON) derivations/run_all.py --check

figures:
	$(PYTHON) experiments/run_all.py

figures-small:
	$(PYTHON) experiments/run_all.py --small

bench:
	$(PYTHON) experiments/bench_analysis.py --quick

bench-smoke:
	$(PYTHON) experiments/bench_analysis.py --smoke

device-check:
	$(PYTHON) -m experiments.device_check

device-check-smoke:
	$(PYTHON) -m experiments.device_check --smoke

lint:
	ruff check . && ruff format --check .

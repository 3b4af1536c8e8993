# One-word entry points. `make test` is exactly `bash scripts/test.sh`.
PYTHON ?= .venv/bin/python

.PHONY: test bench bench-smoke setup

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh --test

# The full benchmark (20-30 minutes): bench/results/full.json and BENCHMARKS.md.
bench: setup
	$(PYTHON) -m bench $(BENCH_ARGS)

# The tiny run the test suite also does (about a minute): bench/results/smoke.json.
bench-smoke: setup
	$(PYTHON) -m bench --smoke $(BENCH_ARGS)

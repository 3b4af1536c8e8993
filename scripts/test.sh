#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite: lint (ruff), types
# (mypy, strict on the package, the bench harness and the tests), then unit and integration tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check reconciler tests bench
.venv/bin/mypy reconciler bench tests
exec .venv/bin/python -m pytest "$@"

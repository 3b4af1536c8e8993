#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite: lint (ruff), types
# (mypy, strict on the package), then unit and integration tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check reconciler tests
.venv/bin/mypy reconciler
exec .venv/bin/python -m pytest "$@"

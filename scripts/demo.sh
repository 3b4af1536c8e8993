#!/usr/bin/env bash
# Install reconciler and run the main job on the embedded default store (./.reconciler):
# apply the offline demo, then show that a second plan has nothing left to do (exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/reconciler apply -f examples/demo.yaml
.venv/bin/reconciler plan -f examples/demo.yaml --detailed-exitcode
.venv/bin/reconciler store check

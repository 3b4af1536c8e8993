#!/usr/bin/env bash
# Install reconciler and run the main job on the embedded default store (./.reconciler).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/reconciler store check

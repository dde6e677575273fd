#!/usr/bin/env bash
# Installs the project and runs the whole test suite (two pytest workers).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q -n 2 --durations=15 "$@"

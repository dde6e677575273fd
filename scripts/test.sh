#!/usr/bin/env bash
# Installs the project and runs the test suite (two pytest workers). The tests marked slow (large
# keras.applications graphs, tf.distribute clusters, kill -9 and end-to-end binary runs) are left out:
# `./scripts/test.sh -m slow` runs only them, `./scripts/test.sh -m "slow or not slow"` runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q -n 2 -m "not slow" --durations=15 "$@"

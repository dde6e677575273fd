#!/usr/bin/env bash
# Installs what the project needs into .venv (idempotent): the package with its test extras, and,
# where apt-get is available, Debian's Fashion-MNIST so the demo runs without internet.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null 2>&1 || true
    $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || echo "note: could not install dataset-fashion-mnist; TFDS will be tried instead." >&2
  fi
fi

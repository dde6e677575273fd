#!/usr/bin/env bash
# CI: the package as a user gets it. Builds the wheel from the checkout, installs it with its
# dependencies into a fresh virtual environment outside the checkout, and from a folder outside the
# checkout runs `keras-lottery --help`, `keras-lottery layer_lottery --help` and one short training on
# synthetic data through the console command; fails if the wheel holds a top-level package other than
# keras_lottery (no `experiments`, no `tests`); a diverging training must end with one line and exit 1.
#
# Why a real fresh environment, and not the test venv's packages plus the wheel with --no-deps: a
# --system-site-packages venv sees the interpreter's own site-packages, not .venv's, and a path to
# .venv would also bring the editable install that maps keras_lottery to this checkout, so it would
# not prove much (neither would --no-deps: the wheel's declared dependencies are part of what a user
# gets). pip takes the dependencies from its cache or local wheels when it has them; on 2 shared CPU
# cores the install took 111-169 s and the whole step 151-232 s.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$(pwd)
PYTHON=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/keras-lottery-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

# The build backend (setuptools) is the test venv's: no isolated build environment to download.
.venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" "$checkout" \
  > "$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/keras_lottery-*.whl)
.venv/bin/python - "$wheel" <<'PY'
import sys, zipfile
tops = {name.split("/")[0] for name in zipfile.ZipFile(sys.argv[1]).namelist()}
extra = sorted(t for t in tops if t != "keras_lottery" and not t.endswith(".dist-info"))
assert not extra, f"the wheel installs top-level {extra} besides keras_lottery"
assert "keras_lottery" in tops
print(f"wheel: {sys.argv[1].rsplit('/', 1)[-1]} (top level: {sorted(tops)})")
PY

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$wheel" > "$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; exit 1; }
echo "installed into a fresh venv in $((SECONDS - start)) s"

cd "$work"  # nothing of the checkout on sys.path from here on
export PATH="$work/venv/bin:$PATH" CUDA_VISIBLE_DEVICES=""
python -c 'import keras_lottery, sys; assert keras_lottery.__file__.startswith(sys.prefix), keras_lottery.__file__' 2> import.err \
  || { cat import.err >&2; exit 1; }
keras-lottery --help > help.txt 2> help.err || { cat help.err >&2; exit 1; }
for name in train imp layer_lottery stability export robustness; do
  grep -q "^  $name " help.txt || { cat help.txt; echo "keras-lottery --help does not list $name" >&2; exit 1; }
done
keras-lottery layer_lottery --help > layer_help.txt 2> help.err || { cat help.err >&2; exit 1; }
grep -q -- "--criterion=" layer_help.txt && grep -q -- "--blocks=" layer_help.txt \
  || { cat layer_help.txt; echo "keras-lottery layer_lottery --help lacks --criterion or --blocks" >&2; exit 1; }
keras-lottery train --dataset=synthetic:28x28x1:10:256 --model=lenet_300_100 --steps=1ep --validation_size=64 \
  --run_root="$work/runs" --run_name=wheel 2> train.err || { cat train.err >&2; exit 1; }
test -f "$work/runs/train/wheel/complete.json" || { echo "the training did not finish" >&2; exit 1; }
# A diverging training: one line, exit status 1, not marked finished.
if keras-lottery train --dataset=synthetic:28x28x1:10:256 --model=lenet_300_100 --steps=1ep --validation_size=64 \
    --batch_size=32 \
    --lr=1e6 --optimizer=sgd --noemissions --run_root="$work/runs" --run_name=nan > nan.out 2> nan.err; then
  echo "keras-lottery train --lr=1e6 did not fail" >&2; exit 1
fi
tail -n 1 nan.err | grep -q "^error: Training diverged at step " || { cat nan.err >&2; exit 1; }
test ! -e "$work/runs/train/nan/complete.json" || { echo "a diverged run was marked finished" >&2; exit 1; }
echo "wheel check passed in $((SECONDS - start)) s"

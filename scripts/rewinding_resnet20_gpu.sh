#!/usr/bin/env bash
# The full-length version of the rewinding study's dense part (issue 30) for one GPU: ResNet-20 on the
# whole Fashion-MNIST training set with the paper's iteration counts (T = 63,000 iterations, lr 0.1 divided
# by 10 at 32,000 and 48,000, batch 128, SGD momentum 0.9, weight decay 1e-4 as
# PyTorch's coupled L2, i.e. --weight_decay=1e-3 in Keras' decoupled form, no warmup, random flips),
# the dense network's instability at k = 0, 100, 500 and 2,000 iterations (0 to 3% of T), one process per
# k, all on the one GPU at once (a ResNet-20 step leaves most of a large GPU idle), XLA on.
#
# What fits in the 15 minutes of GPU time a session gets: each process trains two copies of 63,000 steps
# one after the other, so the whole run takes about 2 x 63,000 x (step time with 4 processes sharing the
# GPU). The script first times TIMING_STEPS (300) steps in that many processes at once and stops, saying so,
# when the projection is over BUDGET_MIN (default 13) minutes. The IMP side does not fit at full length at
# all (at least 6 trainings one after the other); it stays at the CPU scale (scripts/rewinding_resnet20.sh).
# Not run yet: no GPU has been lent to this project's sessions, and the GPU machine the device tool lends
# has no TensorFlow (a TensorFlow wheel is far over the 64 MiB that can be carried there).
#
# Needs TensorFlow with a GPU and this package (pip install -e . on the GPU machine), and the Fashion-MNIST
# IDX files in DATA_DIR (default data/fashion-mnist: copy /usr/share/datasets/fashion-mnist there, a folder
# ignored by git, and carry it: nothing can be downloaded there).
#
# Usage: scripts/rewinding_resnet20_gpu.sh [OUT]        (OUT: where runs and results go, default runs/gpu)
#        T=63000it MILESTONES=32000it,48000it KS="0 100it 500it 2000it" BUDGET_MIN=13 TIMING_STEPS=300
#        JIT=true SEED=0 DATA_DIR=data/fashion-mnist PYTHON=python3 ALLOW_CPU=0 (1: a smoke test on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu}"
PY="${PYTHON:-python3}"
DATA_DIR="${DATA_DIR:-data/fashion-mnist}"
T="${T:-63000it}"
MILESTONES="${MILESTONES:-32000it,48000it}"
KS="${KS:-0 100it 500it 2000it}"
BUDGET_MIN="${BUDGET_MIN:-13}"
SEED="${SEED:-0}"
TIMING_STEPS="${TIMING_STEPS:-300}"

[[ "$T" =~ ^[0-9]+it$ ]] || { echo "error: T=$T must be iterations (e.g. 63000it)" >&2; exit 2; }
[ -d "$DATA_DIR" ] || { echo "error: DATA_DIR=$DATA_DIR is not a directory (the Fashion-MNIST IDX files)" >&2; exit 2; }
if [ "${ALLOW_CPU:-0}" != 1 ]; then
  "$PY" -c "import tensorflow as tf, sys; sys.exit(0 if tf.config.list_physical_devices('GPU') else 1)" 2>/dev/null \
    || { echo "error: TensorFlow sees no GPU here (ALLOW_CPU=1 runs it anyway, for a smoke test)" >&2; exit 2; }
fi
mkdir -p "$OUT"

RECIPE=(--model=resnet20 --dataset=fashion_mnist --data_dir="$DATA_DIR" --optimizer=sgd --lr=0.1 --momentum=0.9
        --weight_decay=1e-3 --batch_size=128 --flip=true --augment=true --steps="$T" --milestones="$MILESTONES"
        --jit_compile="${JIT:-true}" --emissions=false --model_seed="$SEED" --data_seed="$SEED" --run_root="$OUT")

# Timing: TIMING_STEPS (300) steps in as many processes as there are ks, at once (the GPU shared as in the
# run), in segments of TIMING_STEPS / 3 (the first, which compiles, is left out); then the projection.
start=$(date +%s.%N)
segment=$((TIMING_STEPS / 3))
steps="${T%it}"
timing=()
for index in $(seq $(echo $KS | wc -w)); do
  "$PY" -m keras_lottery train "${RECIPE[@]}" --steps="${TIMING_STEPS}it" --milestones='' --eval_every="${segment}it" \
    --run_name="timing_$index" > "$OUT/timing_$index.log" 2>&1 &
  timing+=($!)
done
for pid in "${timing[@]}"; do wait "$pid" || { echo "error: the timing run failed: $OUT/timing_*.log" >&2; exit 1; }; done
"$PY" - "$OUT/train" "$steps" "$BUDGET_MIN" "$start" <<'PY'
import csv, glob, sys, time
root, steps, budget, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
per_process = []
for history in sorted(glob.glob(f"{root}/timing_*/history.csv")):
    rows = list(csv.DictReader(open(history)))
    segments = [(int(b["step"]) - int(a["step"]), float(b["train_time_s"])) for a, b in zip(rows, rows[1:])]
    per_process.append(sum(t for _, t in segments) / sum(n for n, _ in segments))
per_step = max(per_process)
projected = 2 * steps * per_step / 60  # two copies one after the other, every process at once
print(f"timing: {', '.join(f'{1000 * p:.2f}' for p in per_process)} ms/step in {len(per_process)} processes "
      f"sharing the device (after compilation); 2 copies x {steps} steps -> about {projected:.1f} min "
      f"(timing itself took {(time.time() - start) / 60:.1f} min)")
if projected > budget:
    print(f"stopping: over BUDGET_MIN={budget:g} minutes; lower T or KS, or give more GPU time")
    sys.exit(3)
PY

pids=()
for k in $KS; do
  "$PY" -m keras_lottery stability "${RECIPE[@]}" --ks="$k" --data_seeds="$((2 * SEED + 1)),$((2 * SEED + 2))" \
    --points=11 --train_limit=10000 --run_name="rewind_r20_fmfull_dense_s${SEED}_k$k" > "$OUT/stability_k$k.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for k in $KS; do tail -n 2 "$OUT/stability_k$k.log"; done
# One table over the ks (scripts/rewinding_report.py's files, with one replicate)
"$PY" - "$OUT" "$SEED" "$steps" $KS <<'PY'
import os, sys
from keras_lottery.lottery import rewinding_study
out, seed, total, ks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
dirs = [os.path.join(out, "stability", f"rewind_r20_fmfull_dense_s{seed}_k{k}") for k in ks]
summary = rewinding_study.summarize([rewinding_study.Replicate(seed=seed, dense_stability=dirs)], total_steps=total)
print(rewinding_study.write(summary, os.path.join(out, "results")))
PY
exit $status

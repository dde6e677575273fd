#!/usr/bin/env bash
# Seed 003's central claim at a reduced scale on CPU (issue 30): ResNet-20 on Fashion-MNIST with the
# paper's recipe shape (SGD momentum 0.9, lr 0.1 with step decay at 50% and 75% of T, batch 128, no
# warmup), 12,000 training images, T = 10 epochs = 930 iterations. Every binary is resumable: rerun
# this script after an interruption and finished parts are skipped.
#
# For each replicate (model seed s in SEEDS, data-order seeds 2s+1 and 2s+2 for the copies):
#   dense          the dense network's instability against k (0, 10, 25, 50, 100 iterations: 0-11% of T)
#   imp            IMP rewound to k = 0 and to the early k (EARLY_K), global magnitude 36% per level for
#                  8 levels (64, 41, 26, 17, 10.7, 6.9, 4.4, 2.8% of weights), random-pruning and
#                  random-reinit controls at levels 2, 4 and 8 (41, 17, 2.8%)
#   imp_stability  the instability of the IMP subnetworks of levels 4 and 8 from their own k
# (Replicate 0's IMP runs were started with 5 levels and controls at 2 and 4; the binary continues a run
# with more levels and controls, so the same command extends them.)
# Replicates run one after the other, so a finished replicate is a complete set of results.
#
# Usage: scripts/rewinding_resnet20.sh [PART]   PART = dense | imp | imp_stability | all (default)
#        RUN_ROOT=runs, SEEDS="0 1 2", EARLY_K=50it by default. Tables: scripts/rewinding_report.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PART="${1:-all}"
RUN_ROOT="${RUN_ROOT:-runs}"
PY="${PYTHON:-.venv/bin/python}"
SEEDS="${SEEDS:-0 1 2}"
EARLY_K="${EARLY_K:-50it}"
CONTROL_LEVELS=(2 4 8)
STABILITY_LEVELS=(4 8)
RECIPE=(--model=resnet20 --dataset=fashion_mnist --optimizer=sgd --lr=0.1 --momentum=0.9 --batch_size=128
        --train_subset=12000 --steps=10ep --milestones=5ep,7.5ep --emissions=false --run_root="$RUN_ROOT")

case "$PART" in
  dense|imp|imp_stability|all) ;;
  *) echo "error: unknown part '$PART' (dense, imp, imp_stability or all)" >&2; exit 2 ;;
esac

run_dense() {  # $1 = model seed
  "$PY" -m keras_lottery stability "${RECIPE[@]}" --model_seed="$1" --data_seed="$1" --data_seeds="$((2 * $1 + 1)),$((2 * $1 + 2))" \
    --ks=0,10it,25it,50it,100it --points=11 --train_limit=5000 --run_name="rewind_r20_fm12k_dense_s$1"
}

run_imp() {
  for k in 0 "$EARLY_K"; do
    "$PY" -m keras_lottery imp "${RECIPE[@]}" --model_seed="$1" --data_seed="$1" --rule=global --rate=0.36 \
      --levels=8 --rewind="$k" --mode=weights --controls=random,reinit --control_levels="$(IFS=,; echo "${CONTROL_LEVELS[*]}")" \
      --run_name="rewind_r20_fm12k_imp_k${k}_s$1"
  done
}

run_imp_stability() {
  for k in 0 "$EARLY_K"; do
    for level in "${STABILITY_LEVELS[@]}"; do
      "$PY" -m keras_lottery stability "${RECIPE[@]}" --model_seed="$1" --data_seed="$1" \
        --data_seeds="$((2 * $1 + 1)),$((2 * $1 + 2))" --ks="$k" --points=11 --train_limit=5000 \
        --mask="$RUN_ROOT/imp/rewind_r20_fm12k_imp_k${k}_s$1/level_$level/mask.npz" \
        --run_name="rewind_r20_fm12k_imp_k${k}_s${1}_level$level"
    done
  done
}

for seed in $SEEDS; do
  case "$PART" in
    dense) run_dense "$seed" ;;
    imp) run_imp "$seed" ;;
    imp_stability) run_imp_stability "$seed" ;;
    all) run_dense "$seed"; run_imp "$seed"; run_imp_stability "$seed" ;;
  esac
done

#!/usr/bin/env bash
# Seed 003's central claim at a reduced scale on CPU (issue 30): ResNet-20 on Fashion-MNIST with the
# paper's recipe shape (SGD momentum 0.9, lr 0.1 with step decay at 50% and 75% of T, batch 128, no
# warmup). Every binary is resumable: rerun this script after an interruption and finished parts are
# skipped. Parts, in order (PART=dense|imp|controls|imp_stability, default: all):
#
#   dense          the dense network's instability against k, 3 replicates (model seeds 0-2)
#   imp            IMP rewound to k = 0 and to the early k, global magnitude 20% per level for 10 levels
#                  (10.7% of weights), 3 replicates each
#   imp_stability  the instability of the IMP subnetworks (level 3, 6 and 10) at their own k
#
# Usage: scripts/rewinding_resnet20.sh [PART]        (RUN_ROOT=runs by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PART="${1:-all}"
RUN_ROOT="${RUN_ROOT:-runs}"
PY="${PYTHON:-.venv/bin/python}"
SEEDS="${SEEDS:-0 1 2}"
EARLY_K="${EARLY_K:-50it}"
# 12,000 training images, 94 iterations per epoch: T = 10 epochs = 940 iterations.
RECIPE=(--model=resnet20 --dataset=fashion_mnist --optimizer=sgd --lr=0.1 --momentum=0.9 --batch_size=128
        --train_subset=12000 --steps=10ep --milestones=5ep,7.5ep --emissions=false --run_root="$RUN_ROOT")

run_dense() {
  for seed in $SEEDS; do
    "$PY" -m keras_lottery stability "${RECIPE[@]}" --model_seed="$seed" --data_seeds="$((2 * seed + 1)),$((2 * seed + 2))" \
      --ks=0,10it,25it,50it,100it --points=11 --train_limit=5000 --run_name="rewind_r20_fm12k_dense_s$seed"
  done
}

run_imp() {
  for seed in $SEEDS; do
    for k in 0 "$EARLY_K"; do
      "$PY" -m keras_lottery imp "${RECIPE[@]}" --model_seed="$seed" --data_seed="$seed" --rule=global --rate=0.2 \
        --levels=10 --rewind="$k" --mode=weights --controls=random,reinit --control_levels=3,6,10 \
        --run_name="rewind_r20_fm12k_imp_k${k}_s$seed"
    done
  done
}

run_imp_stability() {
  for seed in $SEEDS; do
    for k in 0 "$EARLY_K"; do
      for level in 3 6 10; do
        "$PY" -m keras_lottery stability "${RECIPE[@]}" --model_seed="$seed" \
          --data_seeds="$((2 * seed + 1)),$((2 * seed + 2))" --ks="$k" --points=11 --train_limit=5000 \
          --mask="$RUN_ROOT/imp/rewind_r20_fm12k_imp_k${k}_s$seed/level_$level/mask.npz" \
          --run_name="rewind_r20_fm12k_imp_k${k}_s${seed}_level$level"
      done
    done
  done
}

case "$PART" in
  dense) run_dense ;;
  imp) run_imp ;;
  imp_stability) run_imp_stability ;;
  all) run_dense; run_imp; run_imp_stability ;;
  *) echo "error: unknown part '$PART' (dense, imp, imp_stability or all)" >&2; exit 2 ;;
esac

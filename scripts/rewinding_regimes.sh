#!/usr/bin/env bash
# Issue 30, second part: where does IMP at k = 0 fail? The study of scripts/rewinding_resnet20.sh
# (ResNet-20, Fashion-MNIST, lr 0.1, no augmentation, no weight decay) found k = 0 tickets that match
# the dense network down to 2.8% of weights. The paper gives the regime where k = 0 fails: its full
# ResNet-20 recipe (random crops and flips, weight decay 1e-4), higher learning rates, deeper networks.
# This pilot (one replicate per regime, same data, T = 930 iterations) tries them in that order:
#
#   paper      ResNet-20, the paper's recipe: augmentation (4-pixel crops, flips), weight decay, lr 0.1
#   lr03       the same at lr 0.3 (no warmup)
#   resnet56   the paper's recipe on ResNet-56 (about 3x the cost of ResNet-20 per training), IMP to level 2 only
#              (40 and 16% of weights, the range where the paper's k = 0 tickets fail), random pruning at level 2
#
# Weight decay: the paper's 1e-4 is an L2 term added to the gradient before momentum 0.9 (PyTorch's SGD), which
# shrinks the weights by about lr x 1e-4 / (1 - 0.9) per step; Keras' weight_decay is decoupled (lr x wd per
# step, outside the momentum), so the same shrinkage needs --weight_decay=1e-3.
#
# Per regime: IMP rewound to k = 0 and to EARLY_K, global magnitude 60% per level for 4 levels (40, 16,
# 6.4, 2.6% of weights), random pruning at levels 2 and 4, and the instability of both k's level-2
# subnetwork (16%, the paper's matching density for ResNet-20) from its own k. About 18 trainings
# (55 minutes here for a ResNet-20 regime; ResNet-56: 12 trainings, about 2 hours). Resumable: rerun after an
# interruption.
#
# Usage: scripts/rewinding_regimes.sh [REGIME ...]     (default: paper lr03 resnet56)
#        RUN_ROOT=runs, SEED=0, EARLY_K=50it. Tables:
#        .venv/bin/python scripts/rewinding_report.py --prefix=regime_<REGIME> --seeds=0 --stability_levels=2 \
#            --out=docs/results/rewinding_regimes/<REGIME>
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_ROOT="${RUN_ROOT:-runs}"
PY="${PYTHON:-.venv/bin/python}"
SEED="${SEED:-0}"
EARLY_K="${EARLY_K:-50it}"
REGIMES=("$@")
[ ${#REGIMES[@]} -gt 0 ] || REGIMES=(paper lr03 resnet56)

recipe() {  # $1 = regime: prints the flags of that regime's training, one per line
  local model=resnet20 lr=0.1
  case "$1" in
    paper) ;;
    lr03) lr=0.3 ;;
    resnet56) model=resnet56 ;;
    *) echo "error: unknown regime '$1' (paper, lr03 or resnet56)" >&2; return 2 ;;
  esac
  printf '%s\n' "--model=$model" --dataset=fashion_mnist --optimizer=sgd "--lr=$lr" --momentum=0.9 \
    --weight_decay=1e-3 --augment=true --flip=true --batch_size=128 --train_subset=12000 --steps=10ep \
    --milestones=5ep,7.5ep --emissions=false "--run_root=$RUN_ROOT" "--model_seed=$SEED" "--data_seed=$SEED"
}

pruning() {  # $1 = regime: prints the IMP levels and control levels of that regime, one flag per line
  case "$1" in
    resnet56) printf '%s\n' --levels=2 --control_levels=2 ;;
    *) printf '%s\n' --levels=4 --control_levels=2,4 ;;
  esac
}

for regime in "${REGIMES[@]}"; do recipe "$regime" > /dev/null; done  # bad names fail before any training

for regime in "${REGIMES[@]}"; do
  mapfile -t RECIPE < <(recipe "$regime")
  mapfile -t LEVELS < <(pruning "$regime")
  for k in 0 "$EARLY_K"; do
    "$PY" -m keras_lottery imp "${RECIPE[@]}" --rule=global --rate=0.6 "${LEVELS[@]}" --rewind="$k" --mode=weights \
      --controls=random --run_name="regime_${regime}_imp_k${k}_s$SEED"
  done
  for k in 0 "$EARLY_K"; do
    "$PY" -m keras_lottery stability "${RECIPE[@]}" --data_seeds="$((2 * SEED + 1)),$((2 * SEED + 2))" --ks="$k" \
      --points=11 --train_limit=5000 --mask="$RUN_ROOT/imp/regime_${regime}_imp_k${k}_s$SEED/level_2/mask.npz" \
      --run_name="regime_${regime}_imp_k${k}_s${SEED}_level2"
  done
done

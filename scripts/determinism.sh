#!/usr/bin/env bash
# What varies between two identical runs, with TensorFlow op determinism off and on (docs/runs.md#determinism).
# Runs the demo's layer-lottery command, shrunk (1,000 training images, 2 epochs, GraSP, p = 1, 2), twice
# with --nodeterministic and twice with --deterministic into $1 (default: a temporary directory), then
# prints, per pair, the dense and ticket test accuracies, the dense test loss and the largest difference
# between the GraSP block scores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
python=${PYTHON:-.venv/bin/python}
for mode in nodeterministic deterministic; do
  for copy in 1 2; do
    "$python" -m experiments.layer_lottery --dataset=fashion_mnist --model=resnet20 --criterion=grasp --blocks=1,2 \
      --train_subset=1000 --steps=2ep --milestones=1ep --lr=0.05 --emissions=false --"$mode" \
      --run_root="$out/$mode$copy" > "$out/$mode$copy.log" 2>&1
  done
done
"$python" - "$out" <<'PY'
import glob, json, sys

def load(root):
    run = glob.glob(f"{root}/layer_lottery/*")[0]
    table = json.load(open(f"{run}/table.json"))
    dense = json.load(open(f"{run}/replicate_0/dense/metrics.json"))
    values = {"dense test accuracy": table[0]["dense_accuracy"], "dense test loss": dense["test_loss"]}
    values.update({f"ticket p={row['p']} test accuracy": row["ticket_accuracy"] for row in table})
    return values, json.load(open(f"{run}/replicate_0/scores_grasp.json"))

out = sys.argv[1]
for first, second in (("nodeterministic1", "nodeterministic2"), ("deterministic1", "deterministic2"),
                      ("nodeterministic1", "deterministic1")):
    (a, sa), (b, sb) = load(f"{out}/{first}"), load(f"{out}/{second}")
    print(f"{first} vs {second}:")
    for key in a:
        print(f"  {key}: {a[key]!r} vs {b[key]!r}")
    print(f"  GraSP scores: max abs difference {max(abs(sa[k] - sb[k]) for k in sa):.3g}")
PY

#!/usr/bin/env bash
# Installs the project, then runs the main job: layer tickets at initialization (Jordao et al.) of a
# CIFAR-style ResNet-20 on Fashion-MNIST, scored with GraSP, 1 to 3 blocks removed, each ticket and the
# dense model trained with the same recipe; prints the table. Sized for 2 CPU cores: a 6,000-image
# training subset and 4 epochs. Extra flags are passed on (e.g. --train_subset=0 --steps=30ep).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/keras-lottery layer_lottery --dataset=fashion_mnist --model=resnet20 \
  --criterion=grasp --blocks=1,2,3 --train_subset=6000 --steps=4ep --milestones=3ep --lr=0.05 "$@"

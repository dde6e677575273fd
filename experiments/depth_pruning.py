"""``python -m experiments.depth_pruning`` from a clone: the same as ``keras-lottery depth_pruning`` (keras_lottery/experiments/depth_pruning.py)."""

from keras_lottery.experiments import launch, depth_pruning

main = depth_pruning.main

if __name__ == "__main__":
    launch("depth_pruning")

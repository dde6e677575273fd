"""``python -m experiments.bench_masks`` from a clone: the same as ``keras-lottery bench_masks`` (keras_lottery/experiments/bench_masks.py)."""

from keras_lottery.experiments import launch, bench_masks

main = bench_masks.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("bench_masks")

"""``python -m experiments.bench_robustness`` from a clone: the same as ``keras-lottery bench_robustness`` (keras_lottery/experiments/bench_robustness.py)."""

from keras_lottery.experiments import launch, bench_robustness

main = bench_robustness.main  # what tests/experiments/bad_input_driver.py calls

if __name__ == "__main__":
    launch("bench_robustness")
